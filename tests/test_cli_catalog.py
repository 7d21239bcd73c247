"""``catalog`` and ``verify`` look at a backup directory without an engine: a wrong ``--dir`` or an unknown
VM is said in one line with its exit code (cron must notice), nothing is created for it, and the VM is
found by the name or the id its catalog records."""

from __future__ import annotations

from pathlib import Path

from ovirt_fake_engine.demo import DataEngine

from tests.harness import Cli
from tests.test_cli_backup_job import backup


def one_line(cli: Cli, code: int, *args: str) -> str:
    r = cli(*args)
    assert r.code == code, r.stderr
    assert "Traceback" not in r.stderr and r.stdout == ""
    (line,) = r.error_lines
    return line


def test_a_wrong_dir_is_a_configuration_error_and_creates_nothing(dcli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-dir"
    # every command that reads restore points; restore and export would otherwise say "no restore
    # points of VM" (exit 4), hiding the typo in --dir behind what looks like a missing VM
    commands = [("catalog",), ("verify",), ("restore",), ("export", "--to", str(tmp_path / "out"))]
    for command, *extra in commands:
        line = one_line(dcli, 2, command, "web01", "--dir", str(missing), *extra)
        assert f"backup directory {missing} does not exist" in line and "--dir" in line
    assert not missing.exists() and not (tmp_path / "out").exists()

    regular = tmp_path / "a-file"
    regular.write_text("not a directory\n")
    for command, *extra in commands:
        line = one_line(dcli, 2, command, "web01", "--dir", str(regular), *extra)
        assert f"backup directory {regular} is not a directory" in line
    assert regular.read_text() == "not a directory\n"


def test_an_unknown_vm_is_not_found_and_gets_no_directory(dcli: Cli, tmp_path: Path) -> None:
    backup(dcli)  # the directory exists and holds web01
    root = tmp_path / "backups"
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    for command in ("catalog", "verify"):
        line = one_line(dcli, 4, command, "nosuchvm")
        assert "no restore points of VM 'nosuchvm'" in line
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before  # no nosuchvm/.lock


def test_catalog_and_verify_accept_the_vm_id(dcli: Cli, data_engine: DataEngine) -> None:
    point = backup(dcli).json()
    vm_id = data_engine.web01.id
    by_name = dcli("-o", "json", "catalog", "web01")
    by_id = dcli("-o", "json", "catalog", vm_id)
    assert by_id.code == 0, by_id.stderr
    assert by_id.json() == by_name.json() and by_id.json()[0]["name"] == point["name"]
    table = dcli("catalog", vm_id)
    assert table.code == 0 and "web01" in table.stdout and point["backup_id"] in table.stdout
    verified = dcli("-o", "json", "verify", vm_id)
    assert verified.code == 0, verified.stderr
    assert verified.json()["ok"] is True and "of web01 verified" in verified.stderr
