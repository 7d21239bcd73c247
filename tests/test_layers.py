"""The tree shows the layers, and these tests keep it so: imports go downward only, the library never
prints, typer's private modules are reached from one guarded module, and no module outgrows one job.

    cli → jobs → (engine | imageio | store) → errors, config

``engine`` never touches files or imageio, ``store`` never talks to the engine; ``store`` may use
``imageio.images`` (qemu-img and file hashes are how it checks its own files). Imports inside functions
count as much as those at the top: deferring an import does not change who depends on whom.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "ovbackup"
FAKE_ENGINE = ROOT / "devtools" / "ovirt_fake_engine"

BASE = "base"  # ovbackup/__init__.py, errors.py, config.py
ALLOWED: dict[str, set[str]] = {
    "cli": {"cli", "jobs", "engine", "imageio", "imageio.images", "store", BASE},
    "jobs": {"jobs", "engine", "imageio", "imageio.images", "store", BASE},
    "engine": {"engine", BASE},
    "imageio": {"imageio", "imageio.images", BASE},
    "store": {"store", "imageio.images", BASE},
    BASE: {BASE},
}
# The one module allowed to import typer's private modules (guarded by version, see its docstring).
TYPER_GUARD = PACKAGE / "cli" / "typer_fast.py"
# The one module allowed to import ovirt-imageio's private modules (version-guarded too).
IMAGEIO_GUARD = PACKAGE / "imageio" / "tuning.py"
MAX_LINES = 450  # "split a module when it passes ~400 lines" (style.md)


def modules(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str:
    """The layer of an ``ovbackup.…`` module name."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("errors", "config", "__version__"):
        return BASE
    if parts[1] == "__main__":
        return "cli"
    if parts[1] == "imageio" and len(parts) > 2 and parts[2] == "images":
        return "imageio.images"
    return parts[1]


def own_layer(module: str) -> str:
    layer = layer_of(module)
    return "imageio" if layer == "imageio.images" else layer


def imports(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every import in the file, function-level ones included."""
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:  # `from ovbackup import render` imports a module
                yield node.lineno, f"{node.module}.{alias.name}"


def is_module(name: str) -> bool:
    relative = Path(*name.split("."))
    return (ROOT / relative).with_suffix(".py").exists() or (ROOT / relative / "__init__.py").exists()


def ovbackup_imports(path: Path) -> Iterator[tuple[int, str]]:
    for line, name in imports(path):
        if name == "ovbackup" or not name.startswith("ovbackup."):
            continue
        if is_module(name) or name.count(".") == 1:  # a module, or a name from ovbackup/__init__
            yield line, name


def test_layers_import_downward_only() -> None:
    wrong = []
    for path in modules(PACKAGE):
        mine = own_layer(module_name(path))
        for line, name in ovbackup_imports(path):
            theirs = layer_of(name)
            if theirs not in ALLOWED[mine]:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {mine} imports {name} ({theirs})")
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_layer_rules_catch_an_upward_import(tmp_path: Path) -> None:
    """The checker itself: an engine module importing the store or the CLI is caught."""
    assert "store" not in ALLOWED[own_layer("ovbackup.engine.services.vms")]
    assert "cli" not in ALLOWED[own_layer("ovbackup.jobs.backup")]
    assert "engine" not in ALLOWED[own_layer("ovbackup.store.catalog")]
    assert layer_of("ovbackup.imageio.images") in ALLOWED["store"]
    assert layer_of("ovbackup.imageio.client") not in ALLOWED["store"]
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from ovbackup.cli import render\n")
    assert ("ovbackup.cli.render", 2) in [(n, line) for line, n in imports(sample)]


def test_every_module_belongs_to_a_layer() -> None:
    for path in modules(PACKAGE):
        assert own_layer(module_name(path)) in ALLOWED, path


def _private(package: str, name: str) -> bool:
    parts = name.split(".")
    return parts[0] == package and any(p.startswith("_") for p in parts[1:])


@pytest.mark.parametrize(
    ("package", "guard"), [("typer", TYPER_GUARD), ("ovirt_imageio", IMAGEIO_GUARD)], ids=["typer", "imageio"]
)
def test_only_the_guarded_module_reaches_into_a_dependency(package: str, guard: Path) -> None:
    reaches = [
        f"{path.relative_to(ROOT)}:{line}: {name}"
        for path in modules(PACKAGE)
        if path != guard
        for line, name in imports(path)
        if _private(package, name)
    ]
    assert not reaches, f"{package} internals outside {guard.relative_to(ROOT)}:\n" + "\n".join(reaches)
    assert any(_private(package, name) for _, name in imports(guard))


def _prints(path: Path) -> Iterator[int]:
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in ("print", "input"):
            yield node.lineno
        if (
            isinstance(func, ast.Attribute)
            and func.attr in ("write", "flush")
            and isinstance(func.value, ast.Attribute)
            and func.value.attr in ("stdout", "stderr")
        ):
            yield node.lineno


def test_the_library_never_prints() -> None:
    """Only the CLI owns the terminal: a job, the engine client or the store that wrote to stdout or
    stderr would break JSON output and could die on a closed pipe in the middle of a teardown."""
    library = [p for p in modules(PACKAGE) if own_layer(module_name(p)) != "cli"]
    found = [f"{p.relative_to(ROOT)}:{line}" for p in library for line in _prints(p)]
    assert not found, "the library writes to the terminal:\n" + "\n".join(found)
    rich = [
        f"{p.relative_to(ROOT)}:{line}"
        for p in library
        for line, name in imports(p)
        if name.split(".")[0] in ("rich", "typer")
    ]
    assert not rich, "the library imports rich or typer:\n" + "\n".join(rich)


def test_no_module_outgrows_one_job() -> None:
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in modules(PACKAGE)
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    ]
    assert not big, f"modules over {MAX_LINES} lines (split them by job):\n" + "\n".join(big)


def test_the_fake_engine_is_independent_of_ovbackup() -> None:
    """It plays the real engine: sharing ovbackup's code would let one bug hide on both sides."""
    found = [
        f"{p.relative_to(ROOT)}:{line}: {name}"
        for p in modules(FAKE_ENGINE)
        for line, name in imports(p)
        if name.split(".")[0] == "ovbackup"
    ]
    assert not found, "\n".join(found)
