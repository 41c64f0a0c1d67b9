"""The device a run or a sweep trains on: a `--device` name is checked before torch is
imported (a typo is one quick line), then resolved against what this machine has."""

from __future__ import annotations

from tiny_cli.errors import TinyError


def check(name: str) -> None:
    """Refuse a --device that is no device name at all, before torch is imported."""
    kind, sep, index = name.partition(":")
    if name == "auto" or (kind in ("cpu", "mps") and not sep):
        return
    if kind == "cuda" and (not sep or index.isdigit()):
        return
    raise TinyError(f"--device {name}: not a device (use auto, cpu, cuda, cuda:N or mps)")


def resolve(name: str) -> str:
    """The device a run trains on; whether it is present here needs torch."""
    check(name)
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind, _, index = name.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise TinyError(f"--device {name}: no CUDA device is available here (use cpu or auto)")
        if index and int(index) >= torch.cuda.device_count():
            count = torch.cuda.device_count()
            raise TinyError(f"--device {name}: only {count} CUDA device(s) here")
    elif kind == "mps" and not torch.backends.mps.is_available():
        raise TinyError(f"--device {name}: MPS is not available here (use cpu or auto)")
    return name
