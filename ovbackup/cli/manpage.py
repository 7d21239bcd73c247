"""Man page sections help2man cannot read from ``--help``: ``python -m ovbackup.cli.manpage [README]``.

scripts/man hands this to help2man as an include file (help2man itself reads only the top-level
``--help``): COMMANDS with every command's own ``--help``, so the man page says what
``ovbackup COMMAND -h`` says option for option, and EXIT STATUS from the README's table (the one
list of exit codes, tests/test_quickstart.py checks it against the code).
"""

import contextlib
import io
import sys
from collections.abc import Iterator, Sequence
from typing import Any


def command_paths(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command below ``command`` (groups too), in the order ``--help`` lists them."""
    for name, sub in getattr(command, "commands", {}).items():
        yield (*path, name)
        yield from command_paths(sub, (*path, name))


def roff(text: str) -> str:
    r"""Plain text for roff: backslashes and minus signs escaped (an unescaped ``-`` can render as a
    hyphen, and a copied option would not work), other characters than ASCII as ``\[uXXXX]``, no line
    starting a request."""
    text = text.replace("\\", "\\e").replace("-", "\\-")
    text = "".join(c if c.isascii() else f"\\[u{ord(c):04X}]" for c in text)  # groff's Unicode escape
    lines = []
    for line in text.splitlines():
        lines.append("\\&" + line if line.startswith((".", "'")) else line)
    return "\n".join(lines)


def help_text(path: Sequence[str]) -> str:
    from ovbackup.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([*path, "--help"])
    if code != 0:
        raise RuntimeError(f"ovbackup {' '.join(path)} --help exited {code}")
    return out.getvalue()


def commands_section() -> str:
    """help2man include text: ``[COMMANDS]`` with one subsection per command."""
    from typer.main import get_command

    from ovbackup.cli.app import app

    parts = ["[COMMANDS]"]
    for path in command_paths(get_command(app)):
        usage, _, rest = help_text(path).partition("\n")
        parts.append(f'.SS "{" ".join(path)}"')
        parts.append(".nf")
        parts.append(roff(usage.removeprefix("Usage: ") + "\n" + rest.strip("\n")))
        parts.append(".fi")
    return "\n".join(parts) + "\n"


def _plain(markdown: str) -> str:
    return roff(markdown.replace("`", "").replace("\\|", "|")).replace("\n", " ")


def exit_status_section(readme: str) -> str:
    """help2man include text: ``[EXIT STATUS]`` from the README's exit code table, row by row."""
    table = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip().strip("|").split("|", 1) for line in table.splitlines() if line.startswith("| ")]
    parts = ["[EXIT STATUS]"]
    for code, meaning in rows[1:]:  # the first row is the header
        parts += [".TP", f"\\fB{_plain(code.strip())}\\fR", _plain(meaning.strip())]
    return "\n".join(parts) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) > 1:
        sys.stderr.write("usage: python -m ovbackup.cli.manpage [README.md]\n")
        return 2
    sys.stdout.write(commands_section())
    if args:
        with open(args[0], encoding="utf-8") as f:
            sys.stdout.write("\n" + exit_status_section(f.read()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
