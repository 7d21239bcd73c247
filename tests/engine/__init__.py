"""A fake oVirt engine for the test-suite: a real HTTP(S) server speaking the engine's REST API.

``FakeEngine`` (engine.py) is what tests hold: VMs, clock, fault switches, request log.
server.py is the HTTP(S) plumbing, api.py the REST resources, xmlout.py the XML, state.py the
engine's rules and model.py the plain entities.
"""

from tests.engine.engine import FakeEngine
from tests.engine.model import Backup, Checkpoint, Disk, DiskSpec, Vm
from tests.engine.server import RecordedRequest

__all__ = ["Backup", "Checkpoint", "Disk", "DiskSpec", "FakeEngine", "RecordedRequest", "Vm"]
