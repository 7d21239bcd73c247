"""Bad input of every kind: one clear line on stderr, the documented exit code, no traceback."""

from __future__ import annotations

import http.server
import socket
import threading
from pathlib import Path

import pytest
from ovirt_fake_engine import DiskSpec, FakeEngine, Vm

from ovbackup.engine.connection import Connection
from ovbackup.engine.model import Backup, Disk
from ovbackup.engine.services import SystemService, VmBackupsService
from tests.harness import Cli, Result


def one_error(r: Result, code: int, *fragments: str) -> str:
    assert r.code == code, r.stderr
    assert "Traceback" not in r.stderr
    (line,) = r.error_lines
    for fragment in fragments:
        assert fragment in line, line
    return line


# ---- configuration ------------------------------------------------------------------------------


def test_missing_engine_url_names_flag_env_and_key(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVIRT_URL")
    one_error(cli("list", "web01"), 2, "--engine-url", "OVIRT_URL", "engine_url")


def test_missing_user_names_flag_env_and_key(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OVIRT_USERNAME")
    one_error(cli("list", "web01"), 2, "--username", "OVIRT_USERNAME", "username")


def test_missing_password_without_a_terminal_does_not_prompt(cli: Cli) -> None:
    one_error(cli("list", "web01", password=False), 2, "--password-file", "OVIRT_PASSWORD")


def test_unknown_config_section(cli: Cli, tmp_path: Path) -> None:
    conf = tmp_path / "xdg" / "ovbackup.conf"
    conf.parent.mkdir()
    conf.write_text("[prod]\nengine_url = https://x\n")
    one_error(cli("-c", "staging", "list", "web01"), 2, "[staging]", "prod")


def test_config_section_supplies_url_and_user(
    cli: Cli, engine: FakeEngine, web01: Vm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OVIRT_URL")
    monkeypatch.delenv("OVIRT_USERNAME")
    conf = tmp_path / "xdg" / "ovirt-img.conf"  # an ovirt-img section works unchanged
    conf.parent.mkdir()
    conf.write_text(
        f"[fake]\nengine_url = {engine.base_url}\nusername = {engine.username}\n"
        f"password = {engine.password}\n"
    )
    assert cli("-c", "fake", "-o", "json", "list", "web01", password=False).code == 0


def test_unreadable_password_file(cli: Cli, tmp_path: Path) -> None:
    r = cli("--password-file", str(tmp_path / "missing"), "list", "web01", password=False)
    one_error(r, 2, "password file")


def test_wrong_flag_is_a_usage_error(cli: Cli) -> None:
    r = cli("list", "web01", "--bogus")
    assert r.code == 2 and "no such option" in r.error_lines[0] and "Traceback" not in r.stderr


def test_bad_backup_id_is_a_usage_error(cli: Cli, web01: Vm) -> None:
    one_error(cli("add", "web01", "--backup-id", "not-a-uuid"), 2, "UUID")


# ---- authentication -----------------------------------------------------------------------------


def test_wrong_password(cli: Cli, engine: FakeEngine) -> None:
    cli.password_file.write_text("wrong\n")
    line = one_error(cli("list", "web01"), 3, "admin@internal", "access_denied")
    assert "wrong" not in line  # never the secret


def test_a_401_with_an_html_body_logs_in_again_once(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.expire_tokens()
    engine.unauthorized_next(1)
    r = cli("-o", "json", "list", "web01")
    assert r.code == 0, r.stderr
    assert engine.logins == 2


def test_persistent_401_is_an_authentication_error(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.unauthorized_next(5)
    one_error(cli("list", "web01"), 3, "HTTP 401")


def test_logout_at_exit(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    assert cli("list", "web01").code == 0
    assert (engine.logins, engine.logouts) == (1, 1)


# ---- not found / refused --------------------------------------------------------------------------


def test_unknown_vm_name(cli: Cli, web01: Vm) -> None:
    one_error(cli("list", "nosuchvm"), 4, "nosuchvm")


def test_unknown_backup_id_404_with_empty_body(cli: Cli, web01: Vm) -> None:
    missing = "6b0c7a48-0000-4000-8000-000000000000"
    one_error(cli("show", "web01", missing), 4, missing, "15 minutes")


def test_paused_vm_is_refused(cli: Cli, engine: FakeEngine) -> None:
    engine.add_vm("paused01", status="paused", disks=[DiskSpec(alias="paused01_os")])
    one_error(cli("add", "paused01"), 5, "Up or Down status", "HTTP 409")


def test_second_backup_while_one_runs(cli: Cli, web01: Vm) -> None:
    assert cli("add", "web01", "--no-wait").code == 0
    line = one_error(cli("add", "web01"), 5, "The VM is during a backup operation")
    assert "[" not in line  # the engine's Java-list brackets are stripped


def test_unknown_checkpoint(cli: Cli, web01: Vm) -> None:
    one_error(
        cli("add", "web01", "--from-checkpoint", "c0ffee00-0000-4000-8000-000000000000"), 5, "doesn't exist"
    )


def test_disk_not_attached_to_the_vm(cli: Cli, web01: Vm) -> None:
    line = one_error(
        cli("add", "web01", "--disk", "d15c0000-0000-4000-8000-000000000000"), 4, "not attached to VM web01"
    )
    # The hint's command really lists the ids --disk takes.
    hinted = line.split("`")[1].split()
    assert hinted == ["ovbackup", "disks", "web01"], line
    listed = cli("-o", "json", *hinted[1:])
    assert listed.code == 0, listed.stderr
    assert sorted(d["id"] for d in listed.json()) == sorted(d.id for d in web01.disks)
    assert {d["name"] for d in listed.json()} == {"web01_os", "web01_raw"}
    table = cli(*hinted[1:])
    assert all(d.id in table.stdout for d in web01.disks)


# ---- transport ------------------------------------------------------------------------------------


def test_engine_unreachable(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens here once closed
    monkeypatch.setenv("OVIRT_URL", f"http://127.0.0.1:{port}")
    one_error(cli("list", "web01"), 7, "cannot reach the engine", "--engine-url")


class _PlainServer(http.server.BaseHTTPRequestHandler):
    """Some web server that is not an oVirt engine: the same HTML page with ``status`` for every path."""

    status = 200

    def do_GET(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        page = b"<!DOCTYPE html><html><body>It works!</body></html>"
        self.send_response(self.status)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    do_POST = do_GET

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.mark.parametrize("status", [200, 404])
def test_a_server_that_is_not_an_engine_is_a_configuration_error(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, status: int
) -> None:
    handler = type("Handler", (_PlainServer,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("OVIRT_URL", f"http://127.0.0.1:{server.server_address[1]}")
        line = one_error(cli("vms"), 2, "is not an oVirt engine", f"HTTP {status}", "--engine-url")
    finally:
        server.shutdown()
        server.server_close()
    assert "login" not in line and "authenticat" not in line


def test_an_engine_url_with_a_wrong_api_path_is_a_configuration_error(
    cli: Cli, engine: FakeEngine, monkeypatch: pytest.MonkeyPatch, web01: Vm
) -> None:
    # SSO is found from the address alone; the API path is wrong, so every API reply is a 404 page.
    monkeypatch.setenv("OVIRT_URL", engine.base_url + "/engine/api")
    one_error(cli("list", "web01"), 2, "does not look like an oVirt engine API", "HTTP 404", "--engine-url")


def test_sso_unavailable_is_a_connection_error_not_authentication(cli: Cli, engine: FakeEngine) -> None:
    engine.fail_next(1, status=503, sso=True)  # the engine's proxy is up, the engine is not (yet)
    one_error(cli("vms"), 7, "unavailable", "HTTP 503")


def test_request_timeout(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    assert cli("list", "web01").code == 0  # logged in once; now slow down the API
    engine.delay_next(4, seconds=1.0)
    one_error(cli("list", "web01", "--timeout", "0.2"), 6, "did not answer", "--timeout")


def test_503_is_retried_for_gets(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.fail_next(1, status=503)
    r = cli("-o", "json", "list", "web01")
    assert r.code == 0, r.stderr


def test_lost_post_reply_is_retried_without_a_second_backup(
    engine: FakeEngine, web01: Vm, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(VmBackupsService, "add_retry_delay", 0.0)
    with Connection(engine.url, engine.username, engine.password) as connection:
        backups = SystemService(connection).vms_service().vm_service(web01.id).backups_service()
        backups.list()  # logged in; the next API request is the POST
        engine.reset_log()
        engine.drop_next(1, after_body=True)  # the engine creates the backup, the reply is lost
        started = backups.add(Backup(disks=(Disk(id=web01.disks[0].id),)))
    (backup,) = engine.backups(web01.id)
    assert started.id == backup.id
    sent = [q for q in engine.requests if q.method == "POST" and q.path.endswith("/backups")]
    assert len(sent) == 2 and sent[0].body == sent[1].body  # the same id both times


def test_add_with_wait_false_returns_after_the_http_answer(engine: FakeEngine, web01: Vm) -> None:
    """The seed's ``wait``: the backup is created (the engine answered) when the call returns."""
    with Connection(engine.url, engine.username, engine.password) as connection:
        backups = SystemService(connection).vms_service().vm_service(web01.id).backups_service()
        started = backups.add(Backup(disks=(Disk(id=web01.disks[0].id),)), wait=False)
        assert [b.id for b in engine.backups(web01.id)] == [started.id]
        listed = backups.list(wait=False)
    assert [b.id for b in listed] == [started.id]
    assert backups.service("") is backups
    assert backups.service(str(started.id)).path.endswith(f"/backups/{started.id}")


@pytest.mark.parametrize("kind", ["malformed", "billion_laughs", "external_entity", "html"])
def test_broken_or_hostile_xml(cli: Cli, engine: FakeEngine, web01: Vm, kind: str) -> None:
    assert cli("vms").code == 0
    engine.hostile_next(kind, n=1)
    r = cli("list", "web01")
    line = one_error(r, 1)
    assert any(word in line for word in ("malformed", "hostile", "expected")), line
    assert "root:" not in r.stderr + r.stdout  # /etc/passwd was never read


def test_untrusted_certificate_hints_at_cafile(
    untrusted_tls_engine: FakeEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = Cli(untrusted_tls_engine, tmp_path, monkeypatch, capsys)
    line = one_error(
        cli("list", "web01"), 7, "not trusted", "--cafile", "pki-resource?resource=ca-certificate"
    )
    assert line.startswith("ovbackup: error:")


def test_cafile_makes_tls_work_and_insecure_warns_once(
    tls_engine: FakeEngine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    cli = Cli(tls_engine, tmp_path, monkeypatch, capsys)
    tls_engine.add_vm("web01")
    assert cli("--cafile", str(tls_engine.ca_path), "list", "web01").code == 0
    r = cli("--insecure", "list", "web01")
    assert r.code == 0
    assert r.stderr.count("TLS verification is OFF") == 1


# ---- secrets and debug ------------------------------------------------------------------------------


def test_debug_logs_requests_with_secrets_redacted(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    r = cli("--debug", "list", "web01")
    assert r.code == 0
    assert "GET " in r.stderr and "/vms" in r.stderr
    assert engine.password not in r.stderr + r.stdout
    assert "password=<redacted>" in r.stderr
    token_requests = [q for q in engine.requests if q.headers.get("Authorization", "").startswith("Bearer")]
    token = token_requests[0].headers["Authorization"].split()[1]
    assert token not in r.stderr


def test_traceback_only_with_debug(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.hostile_next("malformed")
    plain = cli("list", "web01")
    assert "Traceback" not in plain.stderr
    engine.hostile_next("malformed")
    debug = cli("--debug", "list", "web01")
    assert debug.code == 1 and "Traceback" in debug.stderr


def test_extra_headers_and_query_reach_every_request(cli: Cli, engine: FakeEngine, web01: Vm) -> None:
    engine.reset_log()
    assert cli("--header", "X-Trace: abc", "--query", "all_content=true", "list", "web01").code == 0
    api = [q for q in engine.requests if "/ovirt-engine/api" in q.path]
    assert api and all(q.headers.get("X-Trace") == "abc" for q in api)
    assert all(q.query.get("all_content") == ["true"] for q in api)
    assert all(q.headers.get("Version") == "4" for q in api)


def test_debug_logging_of_one_run_does_not_leak_into_the_next(cli: Cli, web01: Vm) -> None:
    import logging

    logger = logging.getLogger("ovbackup")
    before = (list(logger.handlers), logger.level, logger.propagate)
    debugged = cli("--debug", "list", "web01")
    assert debugged.code == 0 and "ovbackup: debug:" in debugged.stderr
    assert (list(logger.handlers), logger.level, logger.propagate) == before
    quiet = cli("list", "web01")
    assert quiet.code == 0 and "debug" not in quiet.stderr
