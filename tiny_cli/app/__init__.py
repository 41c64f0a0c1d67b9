"""The stages a command runs, in order: launching a run or sweep (`launch`), one experiment,
a sweep, a Dask cluster, what inspect/export/compare read (`inspection`), resuming, devices,
the sidecar's lifecycle (`painter`), a sweep's stored solutions, the board."""
