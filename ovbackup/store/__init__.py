"""The local side: the catalog of restore points, the per-VM lock, sealing downloaded files and
verifying them offline. It never talks to the engine."""
