"""The command line: the one boundary where exceptions become a message on stderr and an exit code.

Kept import-light: typer is imported here, everything that talks to the engine only when a command runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence

# typer (>= 0.29, pinned) vendors click; its exceptions are the ones raised for bad flags.
from typer import Abort
from typer._click.exceptions import ClickException

from ovbackup.errors import ExitCode, OvbackupError, Terminated

PROG_NAME = "ovbackup"
# The variable the completion scripts in completions/ set to ask for completions instead of a run.
COMPLETE_VAR = "_OVBACKUP_COMPLETE"


def _print_error(text: str) -> None:
    sys.stderr.write(f"ovbackup: error: {text}\n")
    sys.stderr.flush()


def _debug_logging() -> None:
    """Send ovbackup's debug log to the current stderr (its own handler: the root logger may be taken)."""
    import logging  # here, not at the top: ~3 ms on every run, --help and TAB included

    class StderrHandler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            elapsed = record.relativeCreated / 1000
            sys.stderr.write(f"ovbackup: debug: +{elapsed:.3f}s {self.format(record)}\n")

    logger = logging.getLogger("ovbackup")
    logger.handlers[:] = [StderrHandler()]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and return the exit status (the console script passes it to sys.exit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    if debug:
        _debug_logging()
    if os.environ.get(COMPLETE_VAR):
        # add_completion=False keeps --install-completion out of the help, and with it typer's call to
        # completion_init(), which registers the bash/zsh/fish handlers this request needs.
        from typer._completion_classes import completion_init

        completion_init()
    from typer.main import get_command

    from ovbackup.cli.app import app

    command = get_command(app)
    try:
        from ovbackup.cli.coercion import defer_coercion
    except ImportError:  # typer's internals moved: run as typer would, only slower to start
        pass
    else:
        defer_coercion()
    try:
        result = command.main(
            args=args, prog_name=PROG_NAME, complete_var=COMPLETE_VAR, standalone_mode=False
        )
    except ClickException as e:
        e.show()
        return ExitCode.USAGE if e.exit_code == 2 else e.exit_code
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
    except Terminated:
        _print_error("terminated")
        return ExitCode.TERMINATED
    except BrokenPipeError:
        sys.stderr.close()  # the reader went away (e.g. `| head`); nothing more to say
        return ExitCode.ERROR
    except Exception as e:
        if debug:
            raise
        _print_error(f"unexpected {type(e).__name__}: {e} (run with --debug for details)")
        return ExitCode.ERROR
    if result == ExitCode.INTERRUPTED:
        _print_error("interrupted")
    return int(result) if isinstance(result, int) else ExitCode.OK
