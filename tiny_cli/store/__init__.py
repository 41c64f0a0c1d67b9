"""Run directories on disk: bounded reads, typed views and their JSON, TensorBoard events."""
