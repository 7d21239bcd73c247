"""ovbackup: back up oVirt virtual machines through the engine's incremental backup API."""

__version__ = "0.1.0"
