"""ovbackup.cli.typer_fast converts plain values without pydantic: every answer must be typer's own.

Each command line runs twice in fresh interpreters, once as shipped and once with
``OVBACKUP_TYPER_COERCION=pydantic`` (typer untouched), and the two must agree byte for byte: exit status,
stdout, stderr. Runs that parse end before any engine is contacted (no password: exit 2), so a second
probe prints what parsing produced, value and type, for the two to compare. The native conversions are
also checked value by value against typer's adapters.
"""

import json
import math
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from typer._coercion import AdapterRuntimeParam, build_runtime_param, resolve_type_descriptor
from typer.models import OptionInfo

from ovbackup.cli.typer_fast import SWITCH, NotNativeError, native_converter

ROOT = Path(__file__).resolve().parent.parent
ENGINE = ["--engine-url", "http://127.0.0.1:9", "-u", "admin@internal"]
DIR = "{dir}"  # replaced by a directory of the case's own, the same path for both runs
UUID = "0c2a7d5e-55b4-4a8e-9c1f-3f0b7d1e2a44"

# Command lines that parse: both runs end at "no password" (or print offline results).
VALID: list[list[str]] = [
    ["list", "web01"],
    ["list", "web01", "--max", "3"],
    ["list", "web01", "--max", "007"],
    ["list", "web01", "--max", "+3"],
    ["list", "web01", "--max", " 3 "],
    ["list", "web01", "--max", "1_000"],
    ["list", "web01", "--max", "2.0"],
    ["list", "web01", "--max", "99999999999999999999999"],
    ["list", "web01", "--follow", "disks", "--timeout", "5"],
    ["--timeout", "0.001", "list", "web01"],
    ["--timeout", "2.5", "list", "web01"],
    ["--timeout", "1e3", "list", "web01"],
    ["--timeout", "inf", "list", "web01"],
    ["--timeout", "1_0", "list", "web01"],
    ["--timeout", ".5", "list", "web01"],
    ["-o", "json", "list", "web01"],
    ["--output", "table", "--debug", "list", "web01"],
    ["--insecure", "list", "web01"],
    ["--secure", "list", "web01"],
    ["--header", "X-A: 1", "--header", "X-B: 2", "--query", "a=b", "list", "web01"],
    ["--query", "a=b", "--query", "c=", "list", "web01"],
    ["list", "web\udcff01"],
    ["list", ""],
    ["vms", "--max", "2", "--search", "name=web*"],
    ["show", "web01", "b1"],
    ["add", "web01", "--disk", "a", "--disk", "b", "--no-wait", "--description", "nightly run"],
    ["add", "web01", "--from-checkpoint", "c1", "--backup-id", UUID, "--require-consistency"],
    ["add", "web01", "--no-require-consistency", "--use-active"],
    ["wait", "web01", "b1", "--wait-timeout", "10", "--phase", "ready"],
    ["wait", "web01", "b1", "--wait-timeout", "0", "--phase", "SUCCEEDED"],
    ["wait", "web01", "b1", "--wait-timeout", "-0"],
    ["finalize", "web01", "b1", "--no-wait", "--timeout", "30"],
    ["backup", "web01", "--dir", DIR],
    ["backup", "web01", "--dir", DIR, "--full", "--verify", "--lock-wait", "1.5"],
    ["backup", "web01", "--dir", DIR, "--incremental", "--lock-wait", "0", "--max-workers", "16"],
    ["backup", "web01", "--dir", DIR, "--auto", "--parallel-disks", "1", "--format", "RAW"],
    ["backup", "web01", "--dir", DIR, "--disk", "d1", "--disk", "d2", "--no-use-active"],
    ["download", "web01", "b1", "--dir", DIR, "--disk", "a", "--disk", "b", "--max-workers", "1"],
    ["checkpoints", "purge", "web01", "--keep", "2", "--older-than", "1.5"],
    ["checkpoints", "purge", "web01", "--keep", "1", "--older-than", "0", "--dry-run", "-y"],
    ["checkpoints", "list", "web01", "-o", "json"],
    ["catalog", "web01", "--dir", DIR, "-o", "json"],
]
# Command lines typer refuses, or that only print help or the version.
REFUSED: list[list[str]] = [
    ["list", "web01", "--max", "x"],
    ["list", "web01", "--max", "0"],
    ["list", "web01", "--max", "-1"],
    ["list", "web01", "--max", "1.5"],
    ["list", "web01", "--max", ""],
    ["list", "web01", "--max", "\u0663"],
    ["list", "web01", "--max"],
    ["list", "web01", "--bogus"],
    ["list"],
    ["--timeout", "-1", "list", "web01"],
    ["--timeout", "abc", "list", "web01"],
    ["--timeout", "0", "list", "web01"],
    ["--timeout", "0.0009", "list", "web01"],
    ["--timeout", "nan", "list", "web01"],
    ["--timeout", "-inf", "list", "web01"],
    ["list", "web01", "--timeout", "-0"],
    ["wait", "web01", "b1", "--wait-timeout", "x"],
    ["wait", "web01", "b1", "--wait-timeout", "-1"],
    ["backup", "web01", "--dir", DIR, "--max-workers", "20"],
    ["backup", "web01", "--dir", DIR, "--max-workers", "0"],
    ["backup", "web01", "--dir", DIR, "--max-workers", "abc"],
    ["backup", "web01", "--dir", DIR, "--parallel-disks", "0"],
    ["backup", "web01", "--dir", DIR, "--parallel-disks", "17"],
    ["backup", "web01", "--dir", DIR, "--lock-wait", "-1"],
    ["backup", "web01", "--dir", DIR, "--lock-wait", "x"],
    ["backup", "web01", "--dir", DIR, "--lock-wait", "-0.5"],
    ["checkpoints", "purge", "web01", "--keep", "0"],
    ["checkpoints", "purge", "web01", "--keep", "x"],
    ["checkpoints", "purge", "web01", "--older-than", "-1"],
    ["checkpoints", "purge", "web01", "--older-than", "soon"],
    ["checkpoints", "purge"],
    ["download", "web01"],
    ["add", "web01", "--disk"],
    ["--insecure=yes", "list", "web01"],
    ["--version"],
    ["--help"],
    ["list", "--help"],
    ["backup", "-h"],
    ["checkpoints", "purge", "--help"],
]

PARSE = """
import sys
from typer.main import get_command
from ovbackup.cli.app import app
from ovbackup.cli.typer_fast import defer_coercion

defer_coercion()
ctx = get_command(app).make_context("ovbackup", sys.argv[1:])
while True:
    for name, value in sorted(ctx.params.items()):
        print(ctx.info_name, name, type(value).__name__, repr(value))
    rest = [*ctx._protected_args, *ctx.args]
    if not rest or not hasattr(ctx.command, "resolve_command"):
        break
    name, command, rest = ctx.command.resolve_command(ctx, rest)
    ctx = command.make_context(name, rest, parent=ctx)
"""

Outcome = tuple[int, str, str]


def _env(home: Path, *, pydantic: bool) -> dict[str, str]:
    drop = ("OVIRT_", "OVBACKUP_", "_OVBACKUP_", "COMP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(home / "xdg"), COLUMNS="100", LC_ALL="C.UTF-8")
    if pydantic:
        env[SWITCH] = "pydantic"
    return env


def _run(program: list[str], args: list[str], case_dir: Path, *, pydantic: bool) -> Outcome:
    # A fresh directory at the same path for each run, so that neither sees what the other left.
    shutil.rmtree(case_dir, ignore_errors=True)
    (case_dir / "xdg").mkdir(parents=True)
    (case_dir / "backups").mkdir()  # offline commands refuse a backup directory that does not exist
    proc = subprocess.run(
        [*program, *(a.replace(DIR, str(case_dir / "backups")) for a in args)],
        check=False,
        cwd=ROOT,
        env=_env(case_dir, pydantic=pydantic),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
    )
    return proc.returncode, proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")


def _both(program: list[str], args: list[str], case_dir: Path) -> tuple[Outcome, Outcome]:
    return _run(program, args, case_dir, pydantic=False), _run(program, args, case_dir, pydantic=True)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, tuple[Outcome, Outcome]]]:
    """Every case's pair of runs, computed up front in parallel (each run is a fresh interpreter)."""
    base = tmp_path_factory.mktemp("coercion")
    main = [sys.executable, "-m", "ovbackup", *ENGINE]
    parse = [sys.executable, "-c", PARSE, *ENGINE]
    jobs = {f"main {_id(a)}": (main, a) for a in VALID + REFUSED}
    jobs |= {f"parse {_id(a)}": (parse, a) for a in VALID}
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures = {
            key: pool.submit(_both, program, args, base / str(n))
            for n, (key, (program, args)) in enumerate(jobs.items())
        }
        yield {key: future.result() for key, future in futures.items()}


def _id(args: list[str]) -> str:
    return json.dumps(args, ensure_ascii=True)


@pytest.mark.parametrize("args", VALID + REFUSED, ids=_id)
def test_same_answer_as_typer(outcomes: dict[str, tuple[Outcome, Outcome]], args: list[str]) -> None:
    native, typer = outcomes[f"main {_id(args)}"]
    assert native == typer
    assert "--debug" in args or "Traceback" not in native[2]


@pytest.mark.parametrize("args", VALID, ids=_id)
def test_same_values_as_typer(outcomes: dict[str, tuple[Outcome, Outcome]], args: list[str]) -> None:
    native, typer = outcomes[f"parse {_id(args)}"]
    assert native == typer
    assert native[0] == 0, native[2]


def test_valid_runs_reach_the_command(outcomes: dict[str, tuple[Outcome, Outcome]]) -> None:
    # Not refused while parsing: most end at the password, which is read after every value is parsed;
    # the offline ones at the empty backup directory.
    for args in VALID:
        code, _, stderr = outcomes[f"main {_id(args)}"][0]
        assert code == 0 or "no password" in stderr or "no restore points of VM" in stderr, (args, stderr)


# ---- the native conversions, value by value against typer's adapters ---------------------------

VALUES: list[Any] = [
    *["0", "-0", "1", "3", "007", "+3", " 3", "3 ", "1_000", "-1", "16", "17", "20", "", "-", "--1"],
    *["1.0", "1.5", "-0.0", "0.0", "0.001", "0.0009", ".5", "5.", "1e3", "inf", "-inf", "nan", "NaN"],
    *["0x10", "\u0663", "\u00b2", "1\n", "9" * 18, "9" * 19, "9" * 15 + ".5", "1." + "9" * 15, "x"],
    *["yes", "no", "true", "False", "on", "web\udcff01", "NAME: VALUE", b"bytes"],
    *[0, 1, -1, 3, 16, 17, 2**53, 2**53 + 1, True, False, None],
    *[0.0, -0.0, 0.5, 1.5, 0.001, 16.0, math.inf, math.nan],
    *[("a", "b"), ["a"], (), ("1", "2"), ("1", "x")],
]
ANNOTATIONS: list[tuple[Any, dict[str, Any]]] = [
    (str, {}),
    (bool, {}),
    (int, {}),
    (int, {"min": 1}),
    (int, {"min": 1, "max": 16}),
    (float, {}),
    (float, {"min": 0}),
    (float, {"min": 0.001}),
    (float, {"min": -1.5, "max": 16}),
    (list[str], {}),
    (list[int], {"min": 1}),
]


def _same(a: Any, b: Any) -> bool:
    # Type and repr: 1 == 1.0 == True, and -0.0 == 0.0, must not pass for the same answer.
    return type(a) is type(b) and repr(a) == repr(b)


@pytest.mark.parametrize(("annotation", "bounds"), ANNOTATIONS, ids=repr)
def test_native_conversion_matches_the_adapter(annotation: Any, bounds: dict[str, Any]) -> None:
    descriptor = resolve_type_descriptor(annotation, OptionInfo(**bounds))
    convert = native_converter(descriptor)
    assert convert is not None
    real = build_runtime_param(descriptor)
    assert isinstance(real, AdapterRuntimeParam)
    native = 0
    for value in VALUES:
        try:
            mine = convert(value)
        except NotNativeError:
            continue  # left to the adapter
        native += 1
        theirs = real.adapter.validate_python(value)
        assert _same(mine, theirs), (value, mine, theirs)
    assert native >= 2


@pytest.mark.parametrize(
    ("annotation", "info"),
    [(int, OptionInfo(min=1, clamp=True)), (int, OptionInfo(parser=int)), (float, OptionInfo(min=2**60))],
    ids=["clamp", "parser", "odd bound"],
)
def test_left_to_the_adapter(annotation: Any, info: OptionInfo) -> None:
    assert native_converter(resolve_type_descriptor(annotation, info)) is None
