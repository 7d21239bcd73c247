"""The reference for benchmarks/restore.py: disks uploaded the way the SDK's examples/upload_disk.py does it.

One image after the other: ``client.info`` and ``client.measure`` of the image, ``POST /disks`` and a
poll once a second until the disk is ok, an upload transfer and a poll once a second until
transferring, ``ovirt_imageio.client.upload``, then finalize and a poll once a second until
finished_success.

    python benchmarks/reference_upload_disk.py URL USER PASSWORD STORAGE_DOMAIN IMAGE...
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ovirtsdk4 as sdk
import ovirtsdk4.types as types
from ovirt_imageio import client


def main() -> None:
    url, user, password, domain = sys.argv[1:5]
    connection = sdk.Connection(url=url, username=user, password=password)
    system = connection.system_service()
    disks = system.disks_service()
    transfers = system.image_transfers_service()
    for image in sys.argv[5:]:
        info = client.info(image)
        measure = client.measure(image, "qcow2")
        disk = disks.add(
            types.Disk(
                name=Path(image).name[:40],
                content_type=types.DiskContentType.DATA,
                format=types.DiskFormat.COW,
                provisioned_size=info["virtual-size"],
                initial_size=measure["required"],
                sparse=True,
                backup=types.DiskBackup.INCREMENTAL,
                storage_domains=[types.StorageDomain(name=domain)],
            )
        )
        disk_service = disks.disk_service(disk.id)
        while disk.status != types.DiskStatus.OK:
            time.sleep(1)
            disk = disk_service.get()
        transfer = transfers.add(
            types.ImageTransfer(
                disk=types.Disk(id=disk.id),
                direction=types.ImageTransferDirection.UPLOAD,
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
            client.upload(image, transfer.transfer_url, None, proxy_url=transfer.proxy_url, max_workers=4)
        finally:
            transfer_service.finalize()
            while transfer.phase != types.ImageTransferPhase.FINISHED_SUCCESS:
                time.sleep(1)
                transfer = transfer_service.get()
    connection.close()


if __name__ == "__main__":
    main()
