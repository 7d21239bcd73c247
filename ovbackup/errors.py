"""The exception tree and the one exit-code table.

Every failure ovbackup can report is an :class:`OvbackupError` carrying its exit code; exactly one place
(``ovbackup.cli.main``) turns it into a one-line message on stderr and a process exit status, so cron
jobs and CI steps can branch on the code without parsing text.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit statuses, documented in the README; never renumber."""

    OK = 0
    ERROR = 1  # unexpected error (a bug, or an engine answer we cannot understand)
    USAGE = 2  # bad flags, missing or broken configuration
    AUTH = 3  # SSO login refused, 401/403
    NOT_FOUND = 4  # unknown VM, backup or checkpoint; HTTP 404
    REFUSED = 5  # the engine refused the request (400/409 fault)
    TIMEOUT = 6  # a request or a wait deadline expired
    CONNECTION = 7  # engine unreachable, TLS failure, engine unavailable (502/503/504)
    BACKUP_FAILED = 8  # the backup (or a transfer, or a verification) ended in failure
    LOCKED = 9  # another ovbackup run holds the VM's lock
    INCOMPLETE = 10  # a run over several VMs: at least one failed or was skipped
    HANGUP = 129  # SIGHUP (the terminal or SSH session went away)
    INTERRUPTED = 130  # Ctrl-C (SIGINT)
    TERMINATED = 143  # SIGTERM


class OvbackupError(Exception):
    """Base of every error ovbackup reports to the user.

    ``hint`` is an optional second sentence telling the user what to do about it.
    """

    exit_code: ExitCode = ExitCode.ERROR

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(OvbackupError):
    exit_code = ExitCode.USAGE


class NotAnEngineError(ConfigError):
    """The server at the engine URL answered, but not as an oVirt engine does (an HTML page where the
    SSO service sends JSON, an HTML 404 where the API sends XML or nothing): a wrong ``--engine-url``,
    so a configuration error (exit 2), not an authentication one."""


class AuthError(OvbackupError):
    exit_code = ExitCode.AUTH


class NotFoundError(OvbackupError):
    exit_code = ExitCode.NOT_FOUND


class EngineError(OvbackupError):
    """The engine answered with an error status.

    Carries the engine's own reason and detail so callers can recognise specific refusals (for example
    "already exists" after a retried POST) without parsing the formatted message.
    """

    exit_code = ExitCode.ERROR

    def __init__(
        self,
        message: str,
        *,
        status: int,
        reason: str | None = None,
        detail: str | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.reason = reason
        self.detail = detail


class RefusedError(EngineError):
    """A 400/409 fault: the engine understood the request and said no."""

    exit_code = ExitCode.REFUSED


class EngineNotFoundError(EngineError, NotFoundError):
    exit_code = ExitCode.NOT_FOUND


class EngineAuthError(EngineError, AuthError):
    exit_code = ExitCode.AUTH


class EngineUnavailableError(EngineError):
    exit_code = ExitCode.CONNECTION


class StateError(OvbackupError):
    """The resource is not in a state that allows the request (e.g. downloading a backup not ready)."""

    exit_code = ExitCode.REFUSED


class ConnectError(OvbackupError):
    """The engine could not be reached, or TLS failed."""

    exit_code = ExitCode.CONNECTION


class DeadlineError(OvbackupError):
    """A request timed out, or a wait passed its deadline."""

    exit_code = ExitCode.TIMEOUT


class ResponseError(OvbackupError):
    """The engine's reply was not what the API promises (malformed, hostile, wrong type)."""

    exit_code = ExitCode.ERROR


class BackupFailedError(OvbackupError):
    exit_code = ExitCode.BACKUP_FAILED


class TransferError(OvbackupError):
    """A disk's data could not be moved or did not verify: the restore point is not complete."""

    exit_code = ExitCode.BACKUP_FAILED


def human_size(value: int | None) -> str:
    """Bytes for people, binary units (what messages and tables show): 67108864 → '64.0 MiB'."""
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class SpaceError(ConfigError):
    """Not enough free space in the backup directory for the data to transfer (exit 2: use another --dir)."""

    @classmethod
    def needing(cls, what: str, *, needed: int, margin: int, free: int) -> SpaceError:
        """``what`` needs ``needed`` bytes plus the safety margin; say all three in human units."""
        total = needed + margin
        parts = f" ({human_size(needed)} of data + {human_size(margin)} safety margin)" if margin else ""
        return cls(
            f"{what}: {human_size(total)} needed{parts}, {human_size(max(free, 0))} free",
            hint="free some space or use another --dir",
        )


class LockedError(OvbackupError):
    exit_code = ExitCode.LOCKED


class IncompleteError(OvbackupError):
    """A run over several VMs finished, but not every VM is ok (failed or skipped)."""

    exit_code = ExitCode.INCOMPLETE


class Terminated(BaseException):
    """Raised by ovbackup's SIGTERM handler so cleanup runs exactly as for Ctrl-C.

    The exit status is 128 + the signal's number, as a shell reports a death by that signal.
    """

    exit_code = ExitCode.TERMINATED
    what = "terminated"


class HungUp(Terminated):
    """Raised by the SIGHUP handler of the commands that create things (restore, export) and of fleet
    backups: the same cleanup as SIGTERM, exit 129."""

    exit_code = ExitCode.HANGUP
    what = "hung up"


class Interrupted(OvbackupError):
    """Raised in place of KeyboardInterrupt / SIGTERM / SIGHUP once cleanup ran, to exit 130 / 143 / 129."""

    exit_code = ExitCode.INTERRUPTED

    def __init__(self, message: str, *, exit_code: ExitCode = ExitCode.INTERRUPTED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class UndoneError(OvbackupError):
    """A run failed (or was interrupted) and undid what it had created: the message says why it failed
    and what was removed or left; the exit code is the failure's own."""

    def __init__(self, message: str, *, exit_code: ExitCode, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
