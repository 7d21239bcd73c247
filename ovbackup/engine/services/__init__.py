"""The engine's service tree, mirrored thinly: one class per service, one method per call.

Shapes follow the SDK (``VmBackupsService.add/list/backup_service/service`` and so on) so that anyone
who knows ``ovirtsdk4`` can read this; the extra keyword arguments (``headers``, ``query``, ``timeout``,
``wait``) mean what they mean there. Nothing here prints or decides policy.
"""

from ovbackup.engine.services.backups import VmBackupService, VmBackupsService
from ovbackup.engine.services.base import UUID_RE, Service
from ovbackup.engine.services.checkpoints import VmCheckpointService, VmCheckpointsService
from ovbackup.engine.services.disks import DiskService, DisksService
from ovbackup.engine.services.storage import ClustersService, StorageDomainsService
from ovbackup.engine.services.transfers import ImageTransferService, ImageTransfersService
from ovbackup.engine.services.vms import SystemService, VmService, VmsService

__all__ = [
    "UUID_RE",
    "ClustersService",
    "DiskService",
    "DisksService",
    "ImageTransferService",
    "ImageTransfersService",
    "Service",
    "StorageDomainsService",
    "SystemService",
    "VmBackupService",
    "VmBackupsService",
    "VmCheckpointService",
    "VmCheckpointsService",
    "VmService",
    "VmsService",
]
