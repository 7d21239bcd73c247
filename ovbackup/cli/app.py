"""The Typer app: global options, and the bridge from flags to Settings and a Connection.

Global options go before the command; ``-o/--output``, ``--timeout`` and ``--debug`` are accepted after
it too (each command declares them and :func:`settings` merges the two).
"""

# No `from __future__ import annotations` in the command modules: typer would then eval every string
# annotation (twice) while building the app, on every run (~15 ms, benchmarks/startup.py).

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from ovbackup import __version__

if TYPE_CHECKING:
    from ovbackup.config import Flags, Settings
    from ovbackup.connection import Connection

PRECEDENCE = (
    "Settings come from flags, then environment variables, then the config file section (-c), then defaults."
)

app = typer.Typer(
    name="ovbackup",
    help=f"Back up oVirt / RHV / OLVM virtual machines with the engine's backup API.\n\n{PRECEDENCE}",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)

# Options accepted both before and after the command.
OutputOpt = Annotated[
    Optional[str],  # noqa: UP045 - typer reads the annotation at run time on Python 3.10 too
    typer.Option("--output", "-o", help="table or json (one JSON document on stdout) [env OVBACKUP_OUTPUT]"),
]
TimeoutOpt = Annotated[
    Optional[float],  # noqa: UP045
    typer.Option(
        "--timeout", metavar="S", help="Seconds to wait for each engine request (default 60).", min=0.001
    ),
]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Log requests (secrets redacted) and show tracebacks.")
]


@dataclass(frozen=True)
class State:
    flags: "Flags"
    insecure_warned: list[bool]


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"ovbackup {__version__}\n")
        raise typer.Exit()


@app.callback()
def global_options(
    ctx: typer.Context,
    engine_url: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--engine-url",
            metavar="URL",
            help="Engine address, https://engine.example.com [env OVIRT_URL, config engine_url]",
        ),
    ] = None,
    username: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option("--username", "-u", help="e.g. admin@internal [env OVIRT_USERNAME, config username]"),
    ] = None,
    password_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--password-file",
            metavar="FILE",
            help="File whose first line is the password [env OVIRT_PASSWORD holds the password itself, "
            "config password]; prompted for only on a terminal.",
        ),
    ] = None,
    cafile: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--cafile", metavar="FILE", help="PEM CA of the engine [env OVIRT_CAFILE, config cafile]"
        ),
    ] = None,
    insecure: Annotated[
        Optional[bool],  # noqa: UP045
        typer.Option(
            "--insecure/--secure",
            help="Do not verify the engine's TLS certificate (not recommended) [env OVIRT_INSECURE=1, "
            "config insecure]",
            show_default=False,
        ),
    ] = None,
    config: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--config", "-c", metavar="NAME", help="Config file section to use [env OVBACKUP_CONFIG]"
        ),
    ] = None,
    config_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--config-file",
            metavar="FILE",
            help="INI file [env OVBACKUP_CONFIG_FILE; default $XDG_CONFIG_HOME/ovbackup.conf, "
            "else ovirt-img.conf beside it]",
        ),
    ] = None,
    output: OutputOpt = None,
    timeout: TimeoutOpt = None,
    header: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--header", metavar="'NAME: VALUE'", help="Extra HTTP header on every request."),
    ] = None,
    query: Annotated[
        Optional[list[str]],  # noqa: UP045
        typer.Option("--query", metavar="NAME=VALUE", help="Extra query parameter on every request."),
    ] = None,
    debug: DebugOpt = False,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit."),
    ] = False,
) -> None:
    from ovbackup.config import Flags  # here: `ovbackup --help` and TAB completion never need it

    ctx.obj = State(
        Flags(
            engine_url=engine_url,
            username=username,
            password_file=password_file,
            cafile=cafile,
            insecure=insecure,
            config=config,
            config_file=config_file,
            output=output,
            timeout=timeout,
            headers=tuple(header or ()),
            query=tuple(query or ()),
            debug=debug,
        ),
        [False],
    )


def settings(
    ctx: typer.Context,
    *,
    output: str | None = None,
    timeout: float | None = None,
    debug: bool = False,
    backup_dir: str | None = None,
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
    )
    return resolve(flags)


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
    from ovbackup.connection import Connection

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
    sys.stderr.write(f"ovbackup: {text}\n")
    sys.stderr.flush()


def _register() -> None:
    from ovbackup.cli import backups, checkpoints, data, vms

    backups.register(app)
    data.register(app)
    checkpoints.register(app)
    vms.register(app)


_register()
