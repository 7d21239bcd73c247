"""A fake oVirt engine for the test-suite: a real HTTP(S) server speaking the engine's REST API.

``FakeEngine`` (engine.py) is what tests hold: VMs, clock, fault switches, request log.
server.py is the HTTP(S) plumbing, api.py the REST resources, xmlout.py the XML, state.py the
engine's rules and model.py the plain entities. The data plane is opt-in: dataplane.py runs a real
ovirt-imageio daemon and qemu-nbd, storage.py keeps disk images and checkpoint bitmaps, transfers.py
holds the ``/imagetransfers`` rules and data.py is FakeEngine's face for all that.
"""

from ovirt_fake_engine.engine import FakeEngine
from ovirt_fake_engine.model import Backup, Checkpoint, Disk, DiskSpec, ImageTransfer, Vm
from ovirt_fake_engine.server import RecordedRequest
from ovirt_fake_engine.storage import DiskLockedError

__all__ = [
    "Backup",
    "Checkpoint",
    "Disk",
    "DiskLockedError",
    "DiskSpec",
    "FakeEngine",
    "ImageTransfer",
    "RecordedRequest",
    "Vm",
]
