"""Shell completion: the scripts in completions/ are current, and real shells complete through them.

Each shell gets the installed ``ovbackup`` console script (the venv's bin directory first on PATH) and
asks for completions the way the script does on TAB: bash through the function the script registers with
``complete -F``, zsh by autoloading the file from $fpath (and by sourcing it), fish with ``complete -C``.
zsh and fish are tested where installed.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ovbackup.cli.completion import SHELLS, completion_script

COMPLETIONS = Path(__file__).resolve().parent.parent / "completions"
BIN = Path(sys.executable).parent

# (command line up to the cursor, a word that must be offered)
CASES = [
    ("ovbackup l", "list"),
    ("ovbackup checkpoints p", "purge"),
    ("ovbackup --out", "--output"),
    ("ovbackup checkpoints ", "purge"),
    # the values of -o, --format, --phase, --progress: never file names
    ("ovbackup -o ", "json"),
    ("ovbackup list web01 --output t", "table"),
    ("ovbackup backup web01 --format ", "qcow2"),
    ("ovbackup restore web01 --format ", "cow"),
    ("ovbackup wait web01 B --phase ", "succeeded"),
    ("ovbackup backup --progress ", "lines"),
]


@pytest.mark.parametrize("shell", SHELLS)
def test_script_is_current(shell: str) -> None:
    path = COMPLETIONS / f"ovbackup.{shell}"
    assert path.is_file(), f"{path} is missing"
    assert path.read_text() == completion_script(shell), (
        f"{path.relative_to(COMPLETIONS.parent)} is out of date; regenerate it with\n"
        f"  python -m ovbackup.cli.completion {shell} > completions/ovbackup.{shell}"
    )


def shell_env(tmp_path: Path) -> dict[str, str]:
    assert (BIN / "ovbackup").exists(), f"the ovbackup console script is not installed in {BIN}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("_OVBACKUP_", "_TYPER_", "COMP_"))}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(tmp_path),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_DATA_HOME=str(tmp_path / "data"),
    )
    return env


def run(argv: list[str], env: dict[str, str]) -> list[str]:
    proc = subprocess.run(argv, check=False, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout.splitlines()


def check_offered(offered: list[str], line: str, expected: str) -> None:
    incomplete = "" if line.endswith(" ") else line.rsplit(maxsplit=1)[-1]
    assert expected in offered, f"{line!r} + TAB offered {offered}, not {expected!r}"
    assert all(word.startswith(incomplete) for word in offered), offered


BASH = r"""
source "$1"
spec=$(complete -p ovbackup) || exit 3
func=${spec##*-F }
func=${func%% *}
COMP_LINE=$2
COMP_POINT=${#COMP_LINE}
read -r -a COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
"$func" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"""


@pytest.mark.parametrize(("line", "expected"), CASES)
def test_bash(tmp_path: Path, line: str, expected: str) -> None:
    bash = shutil.which("bash")
    assert bash, "bash is needed to test completion"
    script = str(COMPLETIONS / "ovbackup.bash")
    offered = run([bash, "--norc", "--noprofile", "-c", BASH, "bash", script, line], shell_env(tmp_path))
    check_offered(offered, line, expected)


# _arguments and _files only work inside a ZLE completion; these stand-ins print what they were given.
ZSH_STUBS = r"""
_arguments() { print -rl -- "$@" }
_files() { print -r -- '(files)' }
words=(${=2})
[[ $2 == *" " ]] && words+=("")
CURRENT=${#words}
"""
ZSH_AUTOLOAD = (
    ZSH_STUBS
    + r"""
fpath=("$1" $fpath)
autoload -Uz _ovbackup
_ovbackup
"""
)
ZSH_SOURCE = (
    r"""
autoload -Uz compinit && compinit -u -D
source "$1/_ovbackup"
[[ $_comps[ovbackup] == _ovbackup_completion ]] || { print -u2 "not registered: $_comps[ovbackup]"; exit 3 }
"""
    + ZSH_STUBS
    + r"""
_ovbackup_completion
"""
)


@pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")
@pytest.mark.parametrize("how", ["autoload", "source"])
@pytest.mark.parametrize(("line", "expected"), CASES)
def test_zsh(tmp_path: Path, how: str, line: str, expected: str) -> None:
    fpath = tmp_path / "functions"
    fpath.mkdir()
    shutil.copy(COMPLETIONS / "ovbackup.zsh", fpath / "_ovbackup")
    program = ZSH_AUTOLOAD if how == "autoload" else ZSH_SOURCE
    out = run(["zsh", "-f", "-c", program, "zsh", str(fpath), line], shell_env(tmp_path))
    check_offered(zsh_values("\n".join(out)), line, expected)


def zsh_values(spec: str) -> list[str]:
    """The values in the one _arguments spec typer gives zsh: *: :(("value":"help" "value" ...))."""
    assert spec.startswith("*: :((") and spec.endswith("))"), f"not an _arguments spec: {spec!r}"
    quoted = r'"(?:[^"]|"")*"'  # typer doubles a quote inside one
    items = re.findall(rf"({quoted})(?::{quoted})?", spec[len("*: :((") : -len("))")])
    return [item[1:-1].replace('""', '"') for item in items]


@pytest.mark.skipif(shutil.which("fish") is None, reason="fish is not installed")
@pytest.mark.parametrize(("line", "expected"), CASES)
def test_fish(tmp_path: Path, line: str, expected: str) -> None:
    program = "source $argv[1]; and complete --do-complete $argv[2]"
    script = str(COMPLETIONS / "ovbackup.fish")
    out = run(["fish", "--no-config", "-c", program, script, line], shell_env(tmp_path))
    check_offered([item.split("\t")[0] for item in out], line, expected)


def test_the_readme_says_how_to_install_each_script() -> None:
    readme = (COMPLETIONS.parent / "README.md").read_text()
    installing = readme.split("## Installing", 1)[1].split("\n## ", 1)[0]
    assert "`ovbackup` must be on `PATH`" in " ".join(installing.split())  # the scripts call it on TAB
    for shell in SHELLS:
        assert f"completions/ovbackup.{shell}" in installing, f"no install line for {shell}"
