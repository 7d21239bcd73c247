"""The Typer app: global options, and the command modules registered on it.

Global options go before the command; ``-o/--output``, ``--timeout`` and ``--debug`` are accepted after
it too (each command declares them and :func:`ovbackup.cli.context.settings` merges the two).
"""

# No `from __future__ import annotations`: see ovbackup/cli/options.py.

import sys
from typing import Annotated, Optional

import typer

from ovbackup import __version__
from ovbackup.cli.commands import backups, checkpoints, data, restore, retention, vms
from ovbackup.cli.context import State
from ovbackup.cli.help import Group
from ovbackup.cli.options import DebugOpt, OutputOpt, TimeoutOpt

PRECEDENCE = (
    "Settings come from flags, then environment variables, then the config file section (-c), then defaults."
)

app = typer.Typer(
    cls=Group,
    name="ovbackup",
    help=f"Back up oVirt / RHV / OLVM virtual machines with the engine's backup API.\n\n{PRECEDENCE}",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


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
        typer.Option(
            "--username",
            "-u",
            metavar="USER",
            help="e.g. admin@internal [env OVIRT_USERNAME, config username]",
        ),
    ] = None,
    password_file: Annotated[
        Optional[str],  # noqa: UP045
        typer.Option(
            "--password-file",
            metavar="FILE",
            help="File whose first line is the password [env OVIRT_PASSWORD holds the password itself, "
            "config password_file or password]; prompted for only on a terminal.",
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


backups.register(app)
data.register(app)
restore.register(app)
checkpoints.register(app)
retention.register(app)
vms.register(app)
