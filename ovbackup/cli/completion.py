"""Print the shell completion script for bash, zsh or fish: ``python -m ovbackup.cli.completion bash``.

The scripts are typer's: on TAB the shell runs ``ovbackup`` with ``_OVBACKUP_COMPLETE=complete_<shell>``
and the words typed so far, and :func:`ovbackup.cli.main` answers from the app itself, so commands and
options never need listing here. The copies in ``completions/`` are checked current by
tests/test_completion.py. Install one of them:

- bash: ``source completions/ovbackup.bash`` from ``~/.bashrc``, or copy it to
  ``~/.local/share/bash-completion/completions/ovbackup``
- zsh: copy ``completions/ovbackup.zsh`` to ``_ovbackup`` in a directory on ``$fpath`` (before ``compinit``),
  or source it after ``compinit``
- fish: copy ``completions/ovbackup.fish`` to ``~/.config/fish/completions/ovbackup.fish``
"""

import sys
from collections.abc import Sequence

from ovbackup.cli import COMPLETE_VAR, PROG_NAME

SHELLS = ("bash", "zsh", "fish")

# typer's zsh script only registers its function, which is right when the file is sourced but means the
# first TAB completes nothing when it is autoloaded from $fpath as _ovbackup; click's own zsh script tells
# the two apart the same way.
_ZSH_REGISTER = "compdef {func} {prog}"
_ZSH_REGISTER_OR_RUN = """\
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
  # autoloaded from $fpath: this call is already a completion
  {func} "$@"
else
  # sourced: register the function for the next TAB
  compdef {func} {prog}
fi"""


def completion_script(shell: str) -> str:
    """The completion script for ``shell``, ending in a newline as the files in completions/ do."""
    if shell not in SHELLS:
        raise ValueError(f"no completion for {shell!r}: choose {', '.join(SHELLS)}")
    # typer's scripts come from its internals, reached only through the guarded module.
    from ovbackup.cli.typer_fast import completion_script

    script = completion_script(PROG_NAME, COMPLETE_VAR, shell)
    if shell == "zsh":
        names = {"func": f"_{PROG_NAME}_completion", "prog": PROG_NAME}
        register = _ZSH_REGISTER.format(**names)
        if not script.endswith(register):
            raise RuntimeError(f"typer's zsh completion script changed: no {register!r} at its end")
        script = script[: -len(register)] + _ZSH_REGISTER_OR_RUN.format(**names)
    return script + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1 or args[0] not in SHELLS:
        sys.stderr.write(f"usage: python -m ovbackup.cli.completion {{{'|'.join(SHELLS)}}}\n")
        return 2
    sys.stdout.write(completion_script(args[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
