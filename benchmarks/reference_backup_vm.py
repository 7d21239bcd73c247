"""The reference for benchmarks/backup.py: a full backup the way the SDK's examples/backup_vm.py does it.

The SDK starts the backup and polls once a second until ready; then, one disk after the other, it creates
an image transfer, polls once a second until transferring, downloads with ``ovirt_imageio.client``
and finalizes the transfer; then it finalizes the backup and polls until succeeded.

    python benchmarks/reference_backup_vm.py URL USER PASSWORD VM_ID DIR
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
from ovirt_imageio import client


def main() -> None:
    url, user, password, vm_id, directory = sys.argv[1:6]
    connection = sdk.Connection(url=url, username=user, password=password)
    system = connection.system_service()
    vm_service = system.vms_service().vm_service(vm_id)
    disks = [a.disk for a in vm_service.disk_attachments_service().list()]
    backups = vm_service.backups_service()
    backup = backups.add(types.Backup(disks=[types.Disk(id=d.id) for d in disks]))
    backup_service = backups.backup_service(backup.id)
    while backup.phase != types.BackupPhase.READY:
        time.sleep(1)
        backup = backup_service.get()
    transfers = system.image_transfers_service()
    try:
        for disk in backup_service.disks_service().list():
            transfer = transfers.add(
                types.ImageTransfer(
                    disk=types.Disk(id=disk.id),
                    backup=types.Backup(id=backup.id),
                    direction=types.ImageTransferDirection.DOWNLOAD,
                    format=types.DiskFormat.RAW,
                    inactivity_timeout=120,
                    timeout_policy=types.ImageTransferTimeoutPolicy.CANCEL,
                )
            )
            transfer_service = transfers.image_transfer_service(transfer.id)
            while transfer.phase == types.ImageTransferPhase.INITIALIZING:
                time.sleep(1)
                transfer = transfer_service.get()
            try:
                client.download(
                    transfer.transfer_url,
                    str(Path(directory) / f"{disk.id}.full.qcow2"),
                    None,
                    incremental=False,
                    proxy_url=transfer.proxy_url,
                    max_workers=4,
                )
            finally:
                transfer_service.finalize()
                while transfer.phase != types.ImageTransferPhase.FINISHED_SUCCESS:
                    time.sleep(1)
                    transfer = transfer_service.get()
    finally:
        backup_service.finalize()
        while backup.phase != types.BackupPhase.SUCCEEDED:
            time.sleep(1)
            backup = backup_service.get()
    connection.close()


if __name__ == "__main__":
    main()
