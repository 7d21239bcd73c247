"""Precedence (flag > env > config section > default), config files, and their failures."""

from __future__ import annotations

import configparser
import re
from pathlib import Path

import pytest
from ovirt_fake_engine import FakeEngine, Vm

from ovbackup.config import KEYS, Flags, default_config_file, resolve
from ovbackup.errors import ConfigError
from tests.harness import Cli


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    return write(
        tmp_path / "ovbackup.conf",
        "[prod]\nengine_url = https://from-config\nusername = cfg@internal\npassword = cfgpw\n"
        "backup_dir = /srv/cfg\n",
    )


def test_flag_beats_env_beats_config(conf: Path) -> None:
    env = {"OVIRT_URL": "https://from-env", "OVBACKUP_CONFIG_FILE": str(conf)}
    s = resolve(Flags(config="prod", engine_url="https://from-flag"), env)
    assert s.engine_url == "https://from-flag"
    s = resolve(Flags(config="prod"), env)
    assert s.engine_url == "https://from-env"
    assert s.username == "cfg@internal"  # only the config has it
    assert s.password == "cfgpw"
    assert s.backup_dir == "/srv/cfg"
    assert s.output == "table" and s.timeout == 60.0  # defaults


def test_password_file_beats_env(tmp_path: Path) -> None:
    pw = write(tmp_path / "pw", "from-file\n")
    s = resolve(Flags(password_file=str(pw)), {"OVIRT_PASSWORD": "from-env"})
    assert s.password == "from-file"
    assert "from-file" not in repr(s)  # never printed with the settings


def test_ovirt_img_conf_is_used_when_ours_is_missing(tmp_path: Path) -> None:
    write(tmp_path / "ovirt-img.conf", "[engine]\nengine_url = https://img\nusername = u\ncafile = \n")
    env = {"XDG_CONFIG_HOME": str(tmp_path)}
    assert default_config_file(env) == tmp_path / "ovirt-img.conf"
    assert resolve(Flags(config="engine"), env).engine_url == "https://img"


def test_unknown_section_names_the_known_ones(conf: Path) -> None:
    with pytest.raises(ConfigError, match=r"no section \[staging\].*sections: prod"):
        resolve(Flags(config="staging", config_file=str(conf)), {})


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        resolve(Flags(config="x", config_file=str(tmp_path / "nope.conf")), {})


def test_unreadable_password_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read password file"):
        resolve(Flags(password_file=str(tmp_path / "missing")), {})


def test_insecure_from_env_and_config(tmp_path: Path) -> None:
    assert resolve(Flags(), {"OVIRT_INSECURE": "1"}).insecure is True
    c = write(tmp_path / "c.conf", "[a]\nsecure = no\n[b]\ninsecure = maybe\n")
    assert resolve(Flags(config="a", config_file=str(c)), {}).insecure is True
    with pytest.raises(ConfigError, match="yes or no"):
        resolve(Flags(config="b", config_file=str(c)), {})


def test_headers_and_query_are_parsed_and_checked() -> None:
    s = resolve(Flags(headers=("X-Trace: 1",), query=("all_content=true",)), {})
    assert s.headers == {"X-Trace": "1"} and s.query == {"all_content": "true"}
    with pytest.raises(ConfigError, match="bad --header"):
        resolve(Flags(headers=("nocolon",)), {})


def test_bad_output_and_missing_cafile() -> None:
    with pytest.raises(ConfigError, match="unknown output format"):
        resolve(Flags(output="yaml"), {})
    with pytest.raises(ConfigError, match="CA file"):
        resolve(Flags(cafile="/nonexistent/ca.pem"), {})


# ---- the example config, password_file, a password others can read ------------------------------
EXAMPLE = Path(__file__).resolve().parent.parent / "ovbackup.conf.example"
PACKAGE = Path(__file__).resolve().parent.parent / "ovbackup"


def example_keys() -> set[str]:
    """The keys the example sets, and those it shows commented out (``# key = value``)."""
    text = EXAMPLE.read_text()
    parser = configparser.ConfigParser(interpolation=None)
    parser.read_string(text)  # it parses as ovbackup reads it
    active = {key for name in parser.sections() for key in parser[name]}
    return active | set(re.findall(r"^#\s*([a-z_]+)\s*=", text, re.M))


def test_the_example_config_shows_every_key() -> None:
    shown = example_keys()
    assert set(KEYS) - shown == set(), "keys missing from ovbackup.conf.example"
    assert shown - set(KEYS) == set(), "keys in ovbackup.conf.example that config.KEYS does not know"


def test_the_code_reads_no_key_outside_the_key_set() -> None:
    """A new config key must go into config.KEYS (and so into the example): every key the code reads
    from a section is found here."""
    read = set()
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text()
        read |= set(re.findall(r"section\.get\(\s*\"([a-z_]+)\"", source))
        read |= set(re.findall(r"section\[\s*\"([a-z_]+)\"\s*\]", source))
        read |= set(re.findall(r"_pick\([^()]*?, s, \"([a-z_]+)\"", source))
    assert {"password", "password_file", "parallel", "progress", "exclude"} <= read  # the scan works
    assert read - set(KEYS) == set()


def test_the_example_config_resolves(tmp_path: Path) -> None:
    from ovbackup.store.retention import Policy

    pw, ca = write(tmp_path / "pw", "example-pw\n"), write(tmp_path / "ca.pem", "PEM\n")
    text = EXAMPLE.read_text().replace("/etc/ovbackup/prod.password", str(pw))
    conf = write(tmp_path / "ovbackup.conf", text.replace("/etc/pki/ovirt-engine/ca.pem", str(ca)))
    conf.chmod(0o600)
    s = resolve(Flags(config="prod", config_file=str(conf)), {})
    assert (s.engine_url, s.username, s.password) == (
        "https://engine.example.com",
        "admin@internal",
        "example-pw",
    )
    assert s.cafile == str(ca) and not s.insecure and s.backup_dir == "/srv/backup/ovirt"
    assert not Policy.from_values(s.retention).empty and s.warnings == ()


def test_password_file_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    write(tmp_path / "prod.pw", "from-key-file\nsecond line ignored\n")
    conf = write(tmp_path / "c.conf", "[prod]\nengine_url = https://e\npassword_file = ~/prod.pw\n")
    flags = Flags(config="prod", config_file=str(conf))
    assert resolve(flags, {"HOME": str(tmp_path)}).password == "from-key-file"
    assert resolve(flags, {"OVIRT_PASSWORD": "from-env"}).password == "from-env"  # env beats the section
    write(tmp_path / "flag.pw", "from-flag\n")
    assert (
        resolve(
            Flags(config="prod", config_file=str(conf), password_file=str(tmp_path / "flag.pw")), {}
        ).password
        == "from-flag"
    )
    missing = write(tmp_path / "m.conf", "[prod]\npassword_file = /nonexistent/pw\n")
    with pytest.raises(ConfigError, match="cannot read password file /nonexistent/pw"):
        resolve(Flags(config="prod", config_file=str(missing)), {})
    both = write(tmp_path / "b.conf", "[prod]\npassword = x\npassword_file = ~/prod.pw\n")
    with pytest.raises(ConfigError, match="both password and password_file"):
        resolve(Flags(config="prod", config_file=str(both)), {})


MODES = [(0o644, True), (0o640, True), (0o600, False), (0o400, False)]


@pytest.mark.parametrize(("mode", "warned"), MODES, ids=[f"{m:04o}" for m, _ in MODES])
def test_a_password_others_can_read_is_warned_about(
    cli: Cli, tmp_path: Path, engine: FakeEngine, web01: Vm, mode: int, warned: bool
) -> None:
    conf = write(
        tmp_path / "ovbackup.conf",
        f"[fake]\nengine_url = {engine.base_url}\nusername = {engine.username}\n"
        f"password = {engine.password}\n",
    )
    conf.chmod(mode)
    r = cli("-c", "fake", "--config-file", str(conf), "-o", "json", "list", "web01", password=False)
    assert r.code == 0, r.stderr
    lines = [line for line in r.stderr.splitlines() if "readable by others" in line]
    if warned:
        (line,) = lines  # once
        assert (
            line.startswith("ovbackup: warning: config file ") and str(conf) in line and f"{mode:04o}" in line
        )
        assert engine.password not in r.stderr
    else:
        assert lines == []


def test_a_password_file_key_is_not_warned_about(tmp_path: Path) -> None:
    write(tmp_path / "pw", "secret\n")
    conf = write(tmp_path / "c.conf", f"[prod]\nengine_url = https://e\npassword_file = {tmp_path / 'pw'}\n")
    conf.chmod(0o644)  # no secret in it
    assert resolve(Flags(config="prod", config_file=str(conf)), {}).warnings == ()
