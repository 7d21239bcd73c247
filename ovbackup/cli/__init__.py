"""The command line: the one boundary where exceptions become a message on stderr and an exit code.

Kept import-light: typer is imported here, everything that talks to the engine only when a command runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from typing import TextIO

# typer (>= 0.29) vendors click; click's exceptions (bad flags, usage) derive from the public
# typer.TyperException, so that is the one name caught here.
from typer import Abort, TyperException

from ovbackup.errors import ExitCode, OvbackupError, Terminated

PROG_NAME = "ovbackup"
# The variable the completion scripts in completions/ set to ask for completions instead of a run.
COMPLETE_VAR = "_OVBACKUP_COMPLETE"


def reader_gone(stream: TextIO) -> None:
    """The reader of ``stream`` went away (EPIPE from `| head`, EIO from a closed terminal): send the rest
    to /dev/null at the file-descriptor level, so later writes and the interpreter's final flush succeed
    (a failed final flush would turn the exit status into 120). Streams without a descriptor (a test's
    capture) are left alone."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def write_stderr(text: str) -> None:
    """Write a message on stderr. Never raises: a closed pipe or terminal must not stop a job, and above
    all not its teardown (the VM would stay in backup mode)."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError):  # ValueError: the stream was closed
        reader_gone(sys.stderr)


def _print_error(text: str) -> None:
    write_stderr(f"ovbackup: error: {text}\n")


def _debug_logging() -> Callable[[], None]:
    """Send ovbackup's debug log to the current stderr (its own handler: the root logger may be taken).

    Returns what puts the logger back as it was, so one in-process run (a test, an embedding program)
    never leaks its log level and handler into the next.
    """
    import logging  # here, not at the top: ~3 ms on every run, --help and TAB included

    class StderrHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            elapsed = record.relativeCreated / 1000
            write_stderr(f"ovbackup: debug: +{elapsed:.3f}s {self.format(record)}\n")

    logger = logging.getLogger("ovbackup")
    saved = (list(logger.handlers), logger.level, logger.propagate)

    def restore() -> None:
        logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]

    logger.handlers[:] = [StderrHandler()]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return restore


def _register_completion() -> None:
    try:
        from ovbackup.cli.typer_fast import register_completion
    except ImportError:  # an untested typer: the same call through its public-named module
        import importlib

        getattr(importlib.import_module("typer.completion"), "completion_init")()  # noqa: B009
    else:
        register_completion()


def _usage_error(e: TyperException) -> int:
    """A usage error as the README promises: ``ovbackup: error: …`` and the usage line, exit 2.

    click's own display is four lines (usage, a hint, a blank line, ``Error: …``); only the help that
    ``ovbackup`` or a group without a command asks for is still shown whole.
    """
    code = int(getattr(e, "exit_code", ExitCode.USAGE))
    code = ExitCode.USAGE if code == 2 else code
    ctx = getattr(e, "ctx", None)
    if type(e).__name__ == "NoArgsIsHelpError":  # `ovbackup` alone: the help, on stderr
        getattr(e, "show")()  # noqa: B009
        return code
    message = " ".join(e.format_message().split())  # one line, whatever the message held
    if message[:2].istitle():  # "No such option" -> "no such option"; "VM ..." stays
        message = message[0].lower() + message[1:]
    _print_error(message)
    if ctx is not None:
        usage = " ".join(ctx.get_usage().split()).removeprefix("Usage: ")
        write_stderr(f"usage: {usage} (see {ctx.command_path} -h)\n")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit status (the console script passes it to sys.exit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    restore_logging = _debug_logging() if debug else None
    try:
        return _run(args, debug)
    finally:
        if restore_logging is not None:
            restore_logging()


def _run(args: list[str], debug: bool) -> int:
    if os.environ.get(COMPLETE_VAR):
        # add_completion=False keeps --install-completion out of the help, and with it typer's call to
        # completion_init(), which registers the bash/zsh/fish handlers this request needs.
        _register_completion()
    from typer.main import get_command

    from ovbackup.cli.app import app

    command = get_command(app)
    try:  # the one reach into typer's internals, for start-up speed; guarded by version
        from ovbackup.cli.typer_fast import defer_coercion
    except ImportError:  # an untested typer, or its internals moved: run as typer would, only slower
        pass
    else:
        defer_coercion()
    try:
        result = command.main(
            args=args, prog_name=PROG_NAME, complete_var=COMPLETE_VAR, standalone_mode=False
        )
    except TyperException as e:  # click's usage errors (bad flags, missing arguments)
        return _usage_error(e)
    except Abort:
        _print_error("interrupted")
        return ExitCode.INTERRUPTED
    except OvbackupError as e:
        if debug:
            import traceback

            traceback.print_exc(file=sys.stderr)
        _print_error(str(e))
        return int(e.exit_code)
    except KeyboardInterrupt:
        _print_error("interrupted")
        return ExitCode.INTERRUPTED
    except Terminated as e:
        _print_error(e.what)
        return e.exit_code
    except BrokenPipeError:
        reader_gone(sys.stdout)  # the reader went away (e.g. `| head`): the data could not be written
        return ExitCode.ERROR
    except Exception as e:
        if debug:
            raise
        _print_error(f"unexpected {type(e).__name__}: {e} (run with --debug for details)")
        return ExitCode.ERROR
    if result == ExitCode.INTERRUPTED:
        _print_error("interrupted")
    return int(result) if isinstance(result, int) else ExitCode.OK
