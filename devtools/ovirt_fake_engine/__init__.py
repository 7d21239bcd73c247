"""A fake oVirt engine for the test-suite: a real HTTP(S) server speaking the engine's REST API.

``FakeEngine`` (engine.py) is what tests hold: VMs, clock, fault switches, request log.
server.py is the HTTP(S) plumbing; wire.py what every REST resource module shares (replies, SDK
body reading, query values); api.py the VM/backup/checkpoint/transfer resources, storage_api.py the
data centre, cluster, storage domain and disk resources; xmlout.py and xml_inventory.py the XML;
state.py the engine's rules, inventory.py where things live and model.py the plain entities. The
data plane is opt-in: dataplane.py is the face of a real host's data path (daemon.py: the
ovirt-imageio daemon and its tickets; exports.py: qemu-nbd exports; images.py: qemu-img/qemu-io on
images; procs.py: running and stopping those programs), storage.py keeps the disks' images and
checkpoint bitmaps, transfers.py holds the ``/imagetransfers`` rules and data.py is FakeEngine's
face for all that. ``python -m ovirt_fake_engine`` / ``ovbackup-fake-engine`` (__main__.py) runs
one by hand; dirlock.py keeps a data directory to one running engine.

Backups run engine 4.5's snapshot-based ("hybrid") flow by default, as on cluster levels 4.7/4.8,
and the older live/cold flow with ``FakeEngine(legacy=True)`` (a knob) or a client's
``?legacy=true``: flows.py holds both phase machines and lists where the fake had to guess. The
pytest plugin's ``backup_flow`` fixture ("hybrid" unless a test parametrizes it, e.g. with
``BOTH_FLOWS``) picks the flow of ``engine`` and ``data_engine``.

What the fake serves (besides backups, checkpoints and backup transfers):

* ``search=`` on ``/vms``, ``/hosts`` and ``/events`` as the engine reads it (search.py: quoted
  values, ``status=``, ``id=``, ``and``/``or``, ``!=``, free text, ``case_sensitive``);
  ``GET /hosts[/{id}]``; ``GET /events`` (events.py: the backups' audit log, newest first, as
  backup_vm.py reads it on failure); transfer ``pause`` (refused for a download), ``resume`` (only
  a paused transfer) and ``extend`` (a keep-alive).

* ``GET /datacenters[/{id}]`` (one, ``Default``; ``search=name=X`` or ``storage.name=X``),
  ``GET /clusters[/{id}]`` (one, ``Default``, every VM's ``<cluster>``), ``GET /storagedomains[/{id}]``
  (``data``: NFS, a file domain; ``data2``: iSCSI, a block domain; ``search=name=X``) and
  ``GET /storagedomains/{id}/disks[/{id}]``. Every ``<disk>`` carries ``<storage_domains>``;
  ``DiskSpec(storage_domain="data2")`` puts a seeded disk on the block domain.
* Plain transfers (no ``<backup>``): ``direction=download`` of a disk that is not plugged to a VM
  that is up (``set_vm_status(vm, "down")`` first), as ``ovirt-img download-disk`` does; the disk is
  ``locked`` until the transfer command ends.
* ``POST /disks`` (disks.py: ``locked`` for one phase step, then ``ok``; a real image at once, the
  engine's configuration rules, ``initial_size`` as the "LV" size of a qcow2 disk on ``data2``),
  ``GET /disks/{id}``, ``DELETE /disks/{id}``; uploads (``direction=upload``, disk_transfers.py)
  through the real imageio daemon into a writable qemu-nbd export: finalize → ``finalizing_success``
  → ``finished_success`` (the image verified, the disk ``ok``); cancel → ``cancelled_user`` →
  ``finalizing_cleanup`` → ``finished_cleanup`` → ``finished_failure`` with the disk removed; the
  daemon dead (``dataplane.kill_daemon()``) or ``fail_next_transfer`` → ``paused_system``, then the
  client cancels. ``ovirt-img upload-disk`` and ``download-disk`` work against it.
* ``GET /vms/{id}?all_content=true`` with ``initialization/configuration`` (``type=ovf``, the
  engine's own OVF flavour, ovf.py); ``GET /vms/{id}/nics[/{id}]`` (every seeded VM has ``nic1``,
  virtio, a MAC from the Default pool ``56:6f:…``), ``GET /vnicprofiles[/{id}]`` (``ovirtmgmt``);
  ``POST /vms`` from a configuration or from Blank, ``POST /vms/{id}/diskattachments``,
  ``DELETE /vms/{id}[?detach_only=true]``, ``POST /vms/{id}/start`` (``powering_up``, ``up`` one
  phase step later) and ``/stop`` (vms.py, vm_api.py). A VM made this way backs up like a seeded one.

Knobs (set with ``engine.configure(name=value, ...)``, read as ``engine.state.name``):

* ``legacy`` (new backups run the live/cold flow), ``phase_seconds`` (engine-clock seconds per phase
  step; the ``data_engine`` fixture uses 0.05 real seconds), ``tz``, ``succeeded_retention``,
  ``failed_retention``, ``transfer_retention``, ``failed_transfer_retention``; ``fail_next_backup``
  (the next backup fails instead of reaching ready), ``fail_next_transfer`` (the next transfer's
  session never starts: a download is cancelled by the system, an upload ``paused_system``).
* Methods: ``advance(seconds)`` (move the engine clock), ``fail_backup(id)``,
  ``set_vm_status(vm_id, status)``, ``expire_tokens()``.
* Request switches, each for the next ``n`` matching requests, aimed with ``method=`` and
  ``path=`` (a regex over the API path after ``/ovirt-engine/api``, e.g. ``r"/vms"``,
  ``r"/imagetransfers/.*/finalize"``): ``fault_next(method, path, status=500, reason=, detail=)``
  (an engine ``<fault>``, nothing done: ``fault_next("POST", "/vms")`` fails the next VM creation),
  ``fail_next(status=)`` (an HTML error page), ``drop_next(after_body=)`` (the connection cut,
  before or after the request took effect), ``delay_next(seconds=)``, ``hostile_next(kind)``,
  ``unauthorized_next()``, ``gather_next(n, expire_tokens=)`` (the n requests held until all have
  arrived; with ``expire_tokens`` every token expires as they are let go). ``tokens_issued`` lists
  every SSO token handed out.
* The data plane: ``dataplane.kill_daemon()`` (the host's imageio dies; open transfers are found
  dead at the next poll: downloads ``cancelled_system``, uploads ``paused_system``; the
  ``dataplane`` fixture restarts it for the next test), ``write_disk(disk_id, offset, length,
  pattern)`` (a guest write), ``disk_path(disk_id)`` (the image behind a disk, for ``qemu-img
  compare``), ``bitmaps(disk_id)``.

Where the real engine's behaviour was guessed rather than read in its sources: the sizes and
``storage`` details of the domains (the mapper's fields, invented values); the disk is locked only
by plain transfers (the engine's TransferDiskImageCommand.lockImage also runs for backup transfers,
the fake leaves those disks ``ok`` as before); a new disk's ``actual_size`` (0 for a sparse file
disk, its ``initial_size`` or 1 GiB on a block domain); removal is immediate (the engine's
RemoveDisk is asynchronous); an upload's verification is ``qemu-img info`` (format, no backing
file) where vdsm runs VerifyUntrustedVolume; most OVF fields (dates, OS, CPU details) and the NIC
type numbers other than virtio/e1000/rtl8139; an unparsable OVF's refusal text; start needing no
host choice (every VM runs on its ``host_id``).
"""

from ovirt_fake_engine.engine import FakeEngine
from ovirt_fake_engine.model import Backup, Checkpoint, Disk, DiskSpec, Event, ImageTransfer, Vm
from ovirt_fake_engine.server import RecordedRequest
from ovirt_fake_engine.storage import DiskLockedError

__all__ = [
    "Backup",
    "Checkpoint",
    "Disk",
    "DiskLockedError",
    "DiskSpec",
    "Event",
    "FakeEngine",
    "ImageTransfer",
    "RecordedRequest",
    "Vm",
]
