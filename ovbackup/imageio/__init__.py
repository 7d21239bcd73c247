"""The data path: ovirt-imageio's client (download, upload, extents, checksum) and local images
(qemu-img, sparse copies, file hashes). Imported only by the commands that move data."""
