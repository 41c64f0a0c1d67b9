"""The stages a command runs, in order: an experiment, a sweep, a cluster, the board."""
