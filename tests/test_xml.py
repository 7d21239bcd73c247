"""The model layer reads what the engine sends, refuses hostile XML fast, and writes bodies the SDK reads."""

from __future__ import annotations

import resource
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import ovirtsdk4.types as types
import pytest
from ovirtsdk4.reader import Reader

from ovbackup.engine import xml, xmlstream
from ovbackup.engine.model import Backup, BackupPhase, Disk, DiskBackupMode
from ovbackup.errors import ResponseError

ENGINE_BACKUP = b"""<backup href="/ovirt-engine/api/vms/V/backups/B" id="B">
  <actions><link href="/ovirt-engine/api/vms/V/backups/B/finalize" rel="finalize"/></actions>
  <link href="/ovirt-engine/api/vms/V/backups/B/disks" rel="disks"/>
  <creation_date>2022-03-21T06:29:02.650-04:00</creation_date>
  <modification_date>2022-03-21T10:29:05Z</modification_date>
  <from_checkpoint_id>C0</from_checkpoint_id><to_checkpoint_id>C1</to_checkpoint_id>
  <phase>ready</phase><host href="/ovirt-engine/api/hosts/H" id="H"/>
  <vm href="/ovirt-engine/api/vms/V" id="V"/>
</backup>"""


def test_engine_backup_is_read_like_the_sdk_reads_it() -> None:
    ours = xml.parse_one(ENGINE_BACKUP, "backup", xml.backup_from)
    sdk = Reader.read(ENGINE_BACKUP)
    assert ours.id == sdk.id == "B"
    assert ours.phase == BackupPhase.READY and sdk.phase == types.BackupPhase.READY
    assert ours.creation_date == sdk.creation_date
    assert ours.creation_date is not None and ours.creation_date.utcoffset() == timedelta(hours=-4)
    assert ours.modification_date is not None and ours.modification_date.utcoffset() == timedelta(0)
    assert (ours.from_checkpoint_id, ours.to_checkpoint_id) == ("C0", "C1")
    assert (ours.vm_id, ours.host_id, ours.snapshot_id) == ("V", "H", None)
    assert ours.disks is None  # only a link: not inlined


# An image transfer as ImageTransferMapper writes it: the disk is <image>, no <disk>, no <backup>.
ENGINE_TRANSFER = b"""<image_transfer href="/ovirt-engine/api/imagetransfers/T" id="T">
  <actions><link href="/ovirt-engine/api/imagetransfers/T/cancel" rel="cancel"/></actions>
  <active>false</active><direction>download</direction><format>raw</format>
  <inactivity_timeout>120</inactivity_timeout><phase>transferring</phase>
  <proxy_url>https://engine:54323/images/K</proxy_url><shallow>false</shallow>
  <timeout_policy>cancel</timeout_policy><transfer_url>https://host:54322/images/K</transfer_url>
  <transferred>0</transferred><host href="/ovirt-engine/api/hosts/H" id="H"/><image id="D"/>
</image_transfer>"""


def test_engine_image_transfer_names_its_disk_image() -> None:
    ours = xml.parse_one(ENGINE_TRANSFER, "image_transfer", xml.image_transfer_from)
    sdk = Reader.read(ENGINE_TRANSFER)
    assert (ours.id, ours.disk_id, ours.host_id) == (sdk.id, sdk.image.id, sdk.host.id) == ("T", "D", "H")
    assert sdk.disk is None and sdk.backup is None
    assert ours.transfer_url == sdk.transfer_url and ours.inactivity_timeout == 120


def test_status_is_read_when_phase_is_absent_but_phase_wins() -> None:
    seed_example = b'<backup id="b1"><status>initializing</status></backup>'
    assert xml.parse_one(seed_example, "backup", xml.backup_from).phase == BackupPhase.INITIALIZING
    both = b'<backup id="b1"><phase>starting</phase><status>ready</status></backup>'
    assert xml.parse_one(both, "backup", xml.backup_from).phase == BackupPhase.STARTING


def test_unknown_phase_becomes_none_like_the_sdk() -> None:
    data = b'<backup id="b1"><phase>bogus</phase></backup>'
    assert xml.parse_one(data, "backup", xml.backup_from).phase is None
    assert Reader.read(data).phase is None


def test_inlined_disks_and_empty_collection() -> None:
    data = (
        b'<backups><backup id="b"><disks><disk id="d1"><alias>os</alias><format>cow</format>'
        b"<backup_mode>incremental</backup_mode><provisioned_size>1024</provisioned_size></disk>"
        b"</disks></backup></backups>"
    )
    (backup,) = xml.parse_many(data, "backup", xml.backup_from)
    assert backup.disks == (
        Disk(
            id="d1",
            name="os",
            format=xml.DiskFormat.COW,
            backup_mode=DiskBackupMode.INCREMENTAL,
            provisioned_size=1024,
        ),
    )
    assert xml.parse_many(b"<backups/>", "backup", xml.backup_from) == []


@pytest.mark.parametrize(
    "text",
    [
        "2022-03-21T06:29:02Z",
        "2022-03-21T06:29:02.6+02:00",
        "2022-03-21T06:29:02.123456789-0430",
        "2022-03-21T06:29:02",
    ],
)
def test_dates_are_timezone_aware(text: str) -> None:
    assert xml.parse_datetime(text).tzinfo is not None


def test_bad_date_is_a_response_error() -> None:
    with pytest.raises(ResponseError):
        xml.parse_datetime("yesterday")


def test_malformed_xml_is_a_clear_error() -> None:
    with pytest.raises(ResponseError, match="malformed XML"):
        xml.parse_document(b"<backups><backup id='x'>", "backups")


def test_wrong_root_is_refused() -> None:
    with pytest.raises(ResponseError, match="<vm> where <backups> was expected"):
        xml.parse_document(b"<vm id='x'/>", "backups")


BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<backups><backup id="x"><description>&lol9;</description></backup></backups>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE backups [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<backups><backup id="x"><description>&xxe;</description></backup></backups>"""


@pytest.mark.parametrize("body", [BOMB, EXTERNAL], ids=["entity-bomb", "external-entity"])
def test_hostile_xml_is_refused_fast_and_small(body: bytes) -> None:
    # Refused at the DOCTYPE, before any entity is expanded or any file opened (DTDForbidden).
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(ResponseError, match=r"hostile XML response from the engine \(DTDForbidden\)"):
        xml.parse_many(body, "backup", xml.backup_from)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 10_000  # KiB


class Trickle:
    """A streamed reply arriving a few bytes at a time (the prolog check must wait for the root)."""

    def __init__(self, data: bytes, step: int = 7) -> None:
        self.data, self.at, self.step = data, 0, step

    def read(self, size: int = -1) -> bytes:
        out = self.data[self.at : self.at + min(self.step, size if size > 0 else self.step)]
        self.at += len(out)
        return out


HIDDEN = [
    b'\xef\xbb\xbf<?xml version="1.0"?><!-- a comment --><?pi x?>\n' + EXTERNAL.split(b"\n", 1)[1],
    EXTERNAL.decode().encode("utf-16"),  # not ASCII-compatible: the defusedxml path judges it
    b"<!DOCTYPE backups>" + b"<backups/>",
]


@pytest.mark.parametrize("body", HIDDEN, ids=["after-bom-comment-pi", "utf-16", "bare-doctype"])
@pytest.mark.parametrize("streamed", [False, True])
def test_a_dtd_anywhere_before_the_root_is_refused(body: bytes, streamed: bool) -> None:
    data: Any = Trickle(body) if streamed else body
    with pytest.raises(ResponseError, match=r"hostile XML response from the engine \(DTDForbidden\)"):
        xml.parse_many(data, "backup", xml.backup_from)


@pytest.fixture(params=[True, False], ids=["quiet-C-parser", "start-events"])
def c_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways the C parser reads a DTD-free collection: no events once the root has started
    (XMLParser._setevents), or the stock one "start" event per element."""
    quiet: bool = request.param
    monkeypatch.setattr(xmlstream, "QUIET", quiet)
    return quiet


def test_an_entity_without_a_dtd_is_malformed_not_read(c_path: bool) -> None:
    body = b'<backups><backup id="x"><description>&xxe;</description></backup></backups>'
    with pytest.raises(ResponseError, match=r"malformed XML .*undefined entity"):
        xml.parse_many(Trickle(body), "backup", xml.backup_from)


def test_a_collection_reads_the_same_whole_streamed_or_through_defusedxml(c_path: bool) -> None:
    items = ENGINE_BACKUP.replace(b'id="B"', b'id="B1"') + ENGINE_BACKUP.replace(b'id="B"', b'id="B2"')
    body = b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<backups>' + items + b"</backups>"
    whole = xml.parse_many(body, "backup", xml.backup_from)
    assert [b.id for b in whole] == ["B1", "B2"]
    assert xml.parse_many(Trickle(body), "backup", xml.backup_from) == whole
    as_utf16 = body.replace(b"UTF-8", b"UTF-16").decode().encode("utf-16")  # the defusedxml path
    assert xml.parse_many(as_utf16, "backup", xml.backup_from) == whole


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_a_truncated_collection_is_malformed_on_both_paths(c_path: bool, cut: float) -> None:
    body = b"<backups>" + ENGINE_BACKUP * 50 + b"</backups>"
    with pytest.raises(ResponseError, match="malformed XML"):
        xml.parse_many(Trickle(body[: int(len(body) * cut)], step=4096), "backup", xml.backup_from)


@pytest.mark.parametrize("utf16", [False, True], ids=["C-parser", "defusedxml"])
def test_a_large_collection_never_sits_in_memory_as_one_tree(c_path: bool, utf16: bool) -> None:
    items = b"".join(ENGINE_BACKUP.replace(b'id="B"', b'id="B%d"' % i) for i in range(2000))
    body = b'<?xml version="1.0" encoding="UTF-8"?>\n<backups>' + items + b"</backups>"
    if utf16:
        body = body.replace(b"UTF-8", b"UTF-16").decode().encode("utf-16")
    elements = xmlstream.children(Trickle(body, step=64 * 1024))
    root = next(elements)
    held = []
    for n, el in enumerate(elements):
        assert el.get("id") == f"B{n}" and el.find("phase") is not None  # complete, in order
        held.append(len(root))
    assert len(held) == 2000 and max(held) < 200  # items of a chunk or so, never all 2,000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-03-21T06:29:02Z", datetime(2022, 3, 21, 6, 29, 2, tzinfo=UTC)),
        (
            "2022-03-21T06:29:02.6+02:00",
            datetime(2022, 3, 21, 6, 29, 2, 600000, tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            " 2022-03-21T06:29:02.123456789-0430",
            datetime(2022, 3, 21, 6, 29, 2, 123456, tzinfo=timezone(-timedelta(hours=4, minutes=30))),
        ),
        ("2022-03-21T06:29:02", datetime(2022, 3, 21, 6, 29, 2, tzinfo=UTC)),
    ],
)
def test_dates_keep_their_offset_and_microseconds(text: str, expected: datetime) -> None:
    got = xml.parse_datetime(text)
    assert got == expected and got.utcoffset() == expected.utcoffset()


@pytest.mark.parametrize(
    "text", ["2022-03-21", "2022-03-21 06:29:02", "2022-13-21T06:29:02", "2022-03-21T06:29:02+4"]
)
def test_dates_the_engine_never_sends_are_refused(text: str) -> None:
    with pytest.raises(ResponseError, match="invalid date"):
        xml.parse_datetime(text)


def test_fault_reader_tolerates_non_xml() -> None:
    assert xml.parse_fault(b"") is None
    assert xml.parse_fault(b"<html><body>401</body></html>") is None
    fault = xml.parse_fault(b"<fault><reason>Operation Failed</reason><detail>[x]</detail></fault>")
    assert fault is not None and fault.reason == "Operation Failed" and fault.detail == "[x]"
    wrapped = xml.parse_fault(b"<action><status>failed</status><fault><reason>R</reason></fault></action>")
    assert wrapped is not None and wrapped.reason == "R"


def test_backup_body_is_readable_by_the_sdk() -> None:
    body = xml.build_backup(
        Backup(
            id="b-1",
            from_checkpoint_id="c-0",
            description="nightly <&>",
            disks=(Disk(id="d1"), Disk(id="d2")),
        )
    )
    sdk = Reader.read(body)
    assert isinstance(sdk, types.Backup)
    assert sdk.id == "b-1" and sdk.from_checkpoint_id == "c-0" and sdk.description == "nightly <&>"
    assert [d.id for d in sdk.disks] == ["d1", "d2"]


def test_image_transfer_body_is_readable_by_the_sdk() -> None:
    body = xml.build_image_transfer(disk_id="d1", backup_id="b1", inactivity_timeout=120)
    sdk = Reader.read(body)
    assert isinstance(sdk, types.ImageTransfer)
    assert sdk.direction == types.ImageTransferDirection.DOWNLOAD
    assert sdk.format == types.DiskFormat.RAW
    assert sdk.timeout_policy == types.ImageTransferTimeoutPolicy.CANCEL
    assert (sdk.disk.id, sdk.backup.id, sdk.inactivity_timeout) == ("d1", "b1", 120)
    assert isinstance(Reader.read(xml.build_action()), types.Action)
