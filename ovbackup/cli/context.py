"""What every command needs from the command line: settings, a connection, messages on stderr.

Commands call these; the app (app.py) only builds the Typer tree, so no command imports the app.
"""

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from ovbackup.config import Flags, Settings
    from ovbackup.engine.connection import Connection


@dataclass(frozen=True)
class State:
    flags: "Flags"
    insecure_warned: list[bool]
    warned: list[str] = field(default_factory=list)  # the config warnings already shown


def settings(
    ctx: typer.Context,
    *,
    output: str | None = None,
    timeout: float | None = None,
    debug: bool = False,
    backup_dir: str | None = None,
    retention: "dict[str, str | None] | None" = None,
) -> "Settings":
    """Resolve the settings, letting options given after the command override those before it."""
    from ovbackup.config import resolve

    state: State = ctx.find_root().obj
    flags = state.flags
    flags = replace(
        flags,
        output=output or flags.output,
        timeout=timeout if timeout is not None else flags.timeout,
        debug=debug or flags.debug,
        backup_dir=backup_dir or flags.backup_dir,
        retention={k: v for k, v in (retention or {}).items() if v is not None},
    )
    resolved = resolve(flags)
    for warning in resolved.warnings:
        if warning not in state.warned:  # once per run, however many times a command resolves
            state.warned.append(warning)
            note(f"warning: {warning}")
    return resolved


def _require(value: str | None, what: str, flag: str, env: str, key: str) -> str:
    if not value:
        from ovbackup.errors import ConfigError

        raise ConfigError(f"no {what}: pass {flag}, set {env}, or set {key} in a config section (-c NAME)")
    return value


def _password(s: "Settings", username: str) -> str:
    if s.password:
        return s.password
    if sys.stdin.isatty() and sys.stderr.isatty():
        import getpass

        return getpass.getpass(f"Password for {username}: ")
    from ovbackup.errors import ConfigError

    raise ConfigError(
        f"no password for {username}: use --password-file FILE, set OVIRT_PASSWORD, "
        "or set password in a config section (-c NAME)"
    )


@contextmanager
def connect(ctx: typer.Context, s: "Settings") -> Iterator["Connection"]:
    """An authenticated connection for the command, logged out when the command ends."""
    from ovbackup.engine.connection import Connection

    url = _require(s.engine_url, "engine URL", "--engine-url", "OVIRT_URL", "engine_url")
    username = _require(s.username, "user name", "--username", "OVIRT_USERNAME", "username")
    password = _password(s, username)
    state: State = ctx.find_root().obj
    if s.insecure and not state.insecure_warned[0]:
        state.insecure_warned[0] = True
        note("warning: TLS verification is OFF (--insecure): the engine's identity is not checked")
    try:
        connection = Connection(
            url,
            username,
            password,
            ca_file=s.cafile,
            insecure=s.insecure,
            timeout=s.timeout,
            headers=s.headers,
            query=s.query,
        )
    except ValueError as e:
        from ovbackup.errors import ConfigError

        raise ConfigError(f"bad engine URL: {e}", hint="e.g. https://engine.example.com") from None
    try:
        yield connection
    finally:
        connection.close()


def note(text: str) -> None:
    """A message for the person (stderr), never mixed with the data on stdout."""
    from ovbackup.cli import write_stderr

    write_stderr(f"ovbackup: {text}\n")


@contextmanager
def signals_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception in the main thread, so the same teardown runs as for
    Ctrl-C: systemd stopping a unit and an SSH session dropping must not leave the VM in backup mode."""
    from ovbackup.errors import HungUp, Terminated

    def handler(signum: int, frame: FrameType | None) -> None:
        raise HungUp() if signum == signal.SIGHUP else Terminated()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
