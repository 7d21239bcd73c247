"""Settings, resolved in one place with one precedence: flag > environment > config section > default.

The config file is INI. Its default location is ``$XDG_CONFIG_HOME/ovbackup.conf``, and when that does
not exist ``ovirt-img.conf`` beside it, so a section written for ``ovirt-img`` (oVirt's own transfer CLI:
``engine_url``, ``username``, ``password``, ``cafile``) works unchanged.
"""

from __future__ import annotations

import configparser
import os
import stat
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ovbackup.errors import ConfigError

OUTPUTS = ("table", "json")
# Every key a config section may hold (ovbackup.conf.example shows each; tests/test_config.py checks it
# and that the code reads no other). The engine: ovirt-img's keys, plus password_file and secure.
ENGINE_KEYS = ("engine_url", "username", "password", "password_file", "cafile", "insecure", "secure")
# backup of several VMs (cli/fleet.py): flag > section > default.
FLEET_KEYS = (
    "parallel",
    "per_host",
    "max_transfers",
    "exclude",
    "shard",
    "report",
    "metrics_file",
    "hook",
    "hook_timeout",
    "log_file",
    "progress",
)
# Retention and chain settings: a config section may hold them (cron runs `ovbackup -c prod prune web01`),
# the command's flags of the same name (keep_daily <-> --keep-daily) override them.
RETENTION_KEYS = (
    "keep_last",
    "keep_hourly",
    "keep_daily",
    "keep_weekly",
    "keep_monthly",
    "keep_yearly",
    "keep_within",
    "merge",
    "max_chain",
    "keep_checkpoints",
)
KEYS = (*ENGINE_KEYS, "backup_dir", *FLEET_KEYS, *RETENTION_KEYS)
DEFAULT_TIMEOUT = 60.0
_TRUE = ("1", "yes", "true", "on")
_FALSE = ("0", "no", "false", "off", "")


@dataclass(frozen=True)
class Flags:
    """What the user typed; None means "not given" so lower layers may fill it in."""

    engine_url: str | None = None
    username: str | None = None
    password_file: str | None = None
    cafile: str | None = None
    insecure: bool | None = None
    config: str | None = None
    config_file: str | None = None
    output: str | None = None
    timeout: float | None = None
    headers: Sequence[str] = ()
    query: Sequence[str] = ()
    debug: bool = False
    backup_dir: str | None = None
    retention: Mapping[str, str] = field(default_factory=dict)  # RETENTION_KEYS given as flags


@dataclass(frozen=True)
class Settings:
    engine_url: str | None
    username: str | None
    password: str | None = field(repr=False)
    cafile: str | None
    insecure: bool
    output: str
    timeout: float
    headers: Mapping[str, str]
    query: Mapping[str, str]
    debug: bool
    backup_dir: str | None
    config_file: str | None
    config_name: str | None
    # The whole config section (keys as written), for options only some commands have (the fleet's
    # parallel, per_host, exclude, hook, …): flag > section > default, resolved by the command.
    section: Mapping[str, str] = field(default_factory=dict, repr=False)
    retention: Mapping[str, str] = field(default_factory=dict)  # RETENTION_KEYS: flag, else section
    # For the person, on stderr (the CLI prints them; the library never does).
    warnings: tuple[str, ...] = ()


def default_config_file(env: Mapping[str, str]) -> Path:
    base = Path(env.get("XDG_CONFIG_HOME") or Path(env.get("HOME", "~")).expanduser() / ".config")
    own = base / "ovbackup.conf"
    fallback = base / "ovirt-img.conf"
    return own if own.exists() or not fallback.exists() else fallback


def read_section(path: Path, name: str, *, explicit: bool) -> tuple[dict[str, str], list[str]]:
    """The section ``name`` of the file, and warnings about the file (a password others can read)."""
    parser = configparser.ConfigParser(interpolation=None)
    try:
        with path.open(encoding="utf-8") as f:
            parser.read_file(f)
    except FileNotFoundError:
        where = "--config-file/OVBACKUP_CONFIG_FILE" if explicit else "the default location"
        raise ConfigError(
            f"config file {path} not found (from {where})", hint=f"create it with a [{name}] section"
        ) from None
    except (OSError, configparser.Error) as e:
        raise ConfigError(f"cannot read config file {path}: {e}".splitlines()[0]) from None
    if not parser.has_section(name):
        known = ", ".join(parser.sections()) or "none"
        raise ConfigError(f"no section [{name}] in {path} (sections: {known})")
    warnings = []
    if any(parser.has_option(s, "password") for s in parser.sections()):
        mode = _mode(path)
        if mode is not None and mode & (stat.S_IRGRP | stat.S_IROTH):
            warnings.append(
                f"config file {path} holds a password and is readable by others (mode {mode:04o}): "
                f"chmod 600 {path}, or keep the password in a file named by password_file"
            )
    return dict(parser.items(name)), warnings


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return None


def _bool(value: str, what: str) -> bool:
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ConfigError(f"{what} must be yes or no, not {value!r}")


def _pairs(items: Sequence[str], sep: str, what: str, example: str) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        name, found, value = item.partition(sep)
        if not found or not name.strip():
            raise ConfigError(f"bad {what} {item!r}", hint=f"expected {example}")
        result[name.strip()] = value.strip()
    return result


def read_password_file(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline()
    except OSError as e:
        raise ConfigError(f"cannot read password file {path}: {e.strerror or e}") from None
    password = line.rstrip("\r\n")
    if not password:
        raise ConfigError(f"password file {path} is empty")
    return password


def resolve(flags: Flags, env: Mapping[str, str] | None = None) -> Settings:
    """Merge flags, environment, the config section and defaults into Settings.

    The password is never a flag: it comes from ``--password-file``, then ``OVIRT_PASSWORD``, then the
    section's ``password_file`` or ``password`` (not both); when all are missing the CLI may prompt
    (only on a TTY).
    """
    env = os.environ if env is None else env
    name = flags.config or env.get("OVBACKUP_CONFIG") or None
    file_flag = flags.config_file or env.get("OVBACKUP_CONFIG_FILE") or None
    section: dict[str, str] = {}
    warnings: list[str] = []
    config_path: Path | None = None
    if name:
        config_path = Path(file_flag).expanduser() if file_flag else default_config_file(env)
        section, warnings = read_section(config_path, name, explicit=bool(file_flag))
    elif file_flag:
        raise ConfigError(
            "--config-file given without a section", hint="pick one with -c/--config NAME or OVBACKUP_CONFIG"
        )

    def pick(flag: str | None, var: str, key: str) -> str | None:
        for value in (flag, env.get(var), section.get(key)):
            if value:
                return value
        return None

    if section.get("password") and section.get("password_file"):
        raise ConfigError(f"[{name}] in {config_path} has both password and password_file: keep one")
    if flags.password_file:
        password: str | None = read_password_file(flags.password_file)
    elif env.get("OVIRT_PASSWORD"):
        password = env["OVIRT_PASSWORD"]
    elif section.get("password_file"):
        password = read_password_file(str(Path(section["password_file"]).expanduser()))
    else:
        password = section.get("password") or None

    if flags.insecure is not None:
        insecure = flags.insecure
    elif env.get("OVIRT_INSECURE"):
        insecure = _bool(env["OVIRT_INSECURE"], "OVIRT_INSECURE")
    elif "insecure" in section:
        insecure = _bool(section["insecure"], f"insecure in [{name}]")
    elif "secure" in section:  # the SDK examples' ovirt.conf spells it the other way round
        insecure = not _bool(section["secure"], f"secure in [{name}]")
    else:
        insecure = False

    output = (flags.output or env.get("OVBACKUP_OUTPUT") or "table").lower()
    if output not in OUTPUTS:
        raise ConfigError(f"unknown output format {output!r}", hint="use -o table or -o json")

    timeout = flags.timeout if flags.timeout is not None else DEFAULT_TIMEOUT
    if timeout <= 0:
        raise ConfigError(f"--timeout must be positive, not {timeout:g}")

    cafile = pick(flags.cafile, "OVIRT_CAFILE", "cafile")
    if cafile and not insecure and not Path(cafile).expanduser().is_file():
        raise ConfigError(f"CA file {cafile} not found", hint="--cafile / OVIRT_CAFILE / cafile")

    return Settings(
        engine_url=pick(flags.engine_url, "OVIRT_URL", "engine_url"),
        username=pick(flags.username, "OVIRT_USERNAME", "username"),
        password=password,
        cafile=str(Path(cafile).expanduser()) if cafile else None,
        insecure=insecure,
        output=output,
        timeout=timeout,
        headers=_pairs(flags.headers, ":", "--header", "'Name: value'"),
        query=_pairs(flags.query, "=", "--query", "name=value"),
        debug=flags.debug,
        backup_dir=pick(flags.backup_dir, "OVBACKUP_DIR", "backup_dir"),
        config_file=str(config_path) if config_path else None,
        config_name=name,
        section=section,
        retention={
            key: value
            for key in RETENTION_KEYS
            if (value := flags.retention.get(key) or section.get(key, "").strip() or None) is not None
        },
        warnings=tuple(warnings),
    )
