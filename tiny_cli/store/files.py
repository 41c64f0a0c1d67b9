"""A run directory's files: their names, atomic writes, bounded reads of untrusted files, and
`Run`, the handle through which every file of one run or sweep is written and read.

What is read back is untrusted (another tool, a copy from elsewhere or a half-broken disk may
have put anything there): a file is read only if it is a regular file within its cap, and a
JSON or YAML document only within MAX_DEPTH and MAX_NODES. Any failure is a `RunProblem`
naming the file. The directory tree these names make is drawn in runs.py.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tiny_cli.errors import TinyError

CONFIG, META, METRICS, CHECKPOINT = "config.yaml", "run.json", "metrics.json", "model.pt"
SWEEP, SUMMARY, GRID = "sweep.pt", "summary.json", "grid.json"
CURVES = "curves.json"  # a sweep's curves over the epochs (train/curves.py)
SOLUTIONS = "solutions.json"  # `tiny inspect SWEEP --solutions`, computed on first use
PREDICTION = "prediction.png"
UNITS = "units.png"  # the hidden units' activations at the end (unitplot.py)
CHECKPOINT_STATE = "checkpoint.pt"  # the training state of a run that has not finished

# What is read back from a run directory is untrusted: another tool, a copy from elsewhere or
# a half-broken disk may have put anything there. These bounds are far above what tiny writes.
TEXT_CAP = 1 << 20  # run.json, metrics.json, summary.json, grid.json, config.yaml
CURVES_CAP = 32 << 20  # curves.json: ~100 KB per grid point
TENSOR_CAP = 256 << 20  # model.pt, sweep.pt
MAX_DEPTH = 32  # nesting of JSON/YAML values (a 4-d parameter list is 5 deep)
MAX_NODES = 1_000_000  # values in one JSON/YAML document, YAML aliases counted each time used

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


class RunProblem(TinyError):
    """A file of a run that cannot be used (missing, not a regular file, too large, corrupt,
    not what tiny writes); the message names the file. Not the user's typo: exit code 1."""

    exit_code = 1


def atomic_write(path: Path, data: bytes) -> None:
    """Write to a temporary name, then rename: a crash or a full disk never leaves half a
    file, and the temporary file goes whatever fails (the old file stays as it was)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


# --- reading untrusted files ------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n} bytes"


def read_file(directory: Path, name: str, cap: int) -> bytes:
    """The bytes of `directory/name`, only if it is a regular file (not a symlink, FIFO or
    device) of at most `cap` bytes. The check is made on the open descriptor (fstat), so the
    file cannot be swapped between check and read; O_NONBLOCK keeps a FIFO from hanging."""
    path = directory / name
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            raise RunProblem(f"{name} is a symbolic link (not followed)")
        if not stat.S_ISREG(info.st_mode):
            raise RunProblem(f"{name} is not a regular file")
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise RunProblem(f"{name} is missing") from None
    except OSError as exc:
        raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise RunProblem(f"{name} is not a regular file")
        if info.st_size > cap:
            raise RunProblem(f"{name} is too large ({_size(info.st_size)}, at most {_size(cap)})")
        try:
            data = f.read(cap + 1)
        except OSError as exc:
            raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    if len(data) > cap:  # it grew after the check
        raise RunProblem(f"{name} is too large (more than {_size(cap)})")
    return data


def _check_tree(value: Any, name: str) -> None:
    """Bound the nesting and the number of values (without recursion: the point is to
    survive a hostile file). YAML aliases count each time they are used, so an alias bomb
    fails here instead of exploding when shown or dumped."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_DEPTH:
            raise RunProblem(f"{name} is nested too deeply (more than {MAX_DEPTH} levels)")
        if nodes > MAX_NODES:
            raise RunProblem(f"{name} has too many values (more than {MAX_NODES:,})")
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


def read_json(directory: Path, name: str, cap: int = TEXT_CAP) -> Any:
    data = read_file(directory, name, cap)
    try:
        value = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise RunProblem(f"{name} is nested too deeply") from None
    except ValueError as exc:
        raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    _check_tree(value, name)
    return value


def read_json_object(directory: Path, name: str) -> dict[str, Any]:
    value = read_json(directory, name)
    if not isinstance(value, dict):
        raise RunProblem(f"{name} is not a JSON object")
    return value


def read_yaml_mapping(directory: Path, name: str) -> dict[str, Any]:
    import yaml

    data = read_file(directory, name, TEXT_CAP)
    try:
        value = yaml.safe_load(data)
    except RecursionError:
        raise RunProblem(f"{name} is nested too deeply") from None
    except (yaml.YAMLError, ValueError) as exc:
        raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise RunProblem(f"{name} is not a mapping")
    _check_tree(value, name)
    return value


def load_tensors(directory: Path, name: str) -> dict[str, Any]:
    """A torch file (weights_only: tensors and plain values, no code) of at most TENSOR_CAP."""
    import torch

    data = read_file(directory, name, TENSOR_CAP)
    try:
        with warnings.catch_warnings():  # a foreign file's warnings are not ours to print
            warnings.simplefilter("ignore")
            value = torch.load(io.BytesIO(data), weights_only=True)
    except Exception as exc:  # corrupt or hostile: torch raises many kinds
        raise RunProblem(f"{name} is unreadable ({type(exc).__name__})") from None
    if not isinstance(value, dict):
        raise RunProblem(f"{name} is not a dict")
    return value


def invalid(name: str, exc: ValidationError) -> RunProblem:
    """A file that does not match its typed view: the first error, naming the file."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return RunProblem(f"{name} is invalid ({where + ': ' if where else ''}{first['msg']})")


# --- one run directory -------------------------------------------------------------------


@dataclass
class Run:
    """A run's (or a sweep's) directory: its files written atomically, read within bounds."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    def write_json(self, name: str, data: Any) -> None:
        atomic_write(self.path / name, (json.dumps(data, indent=2) + "\n").encode())

    def read_json(self, name: str) -> Any:
        return read_json(self.path, name)

    def write_text(self, name: str, text: str) -> None:
        atomic_write(self.path / name, text.encode())

    def write_bytes(self, name: str, data: bytes) -> Path:
        atomic_write(self.path / name, data)
        return self.path / name

    def read_text(self, name: str) -> str:
        try:
            return read_file(self.path, name, TEXT_CAP).decode("utf-8")
        except UnicodeDecodeError:
            raise RunProblem(f"{name} is not UTF-8 text") from None

    def update_meta(self, **changes: Any) -> dict[str, Any]:
        meta = self.read_json(META) if (self.path / META).exists() else {}
        meta.update(changes)
        self.write_json(META, meta)
        return meta

    def overwrite_meta(self, **changes: Any) -> None:
        """`update_meta` in place, for when a new file cannot be written (a full disk): the
        old run.json's own blocks hold the new one. Not atomic: only the last resort."""
        try:
            meta = self.read_json(META)
        except (OSError, ValueError):
            meta = {}
        meta.update(changes)
        data = json.dumps(meta, indent=2).encode() + b"\n"
        with open(self.path / META, "r+b") as f:
            f.truncate(0)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    def save_state(self, state: dict[str, Any]) -> None:
        import torch

        buf = io.BytesIO()
        torch.save({k: v.detach().cpu().clone() for k, v in state.items()}, buf)
        atomic_write(self.path / CHECKPOINT, buf.getvalue())

    def load_state(self) -> dict[str, Any]:
        return self.load_tensors(CHECKPOINT)

    def save_tensors(self, name: str, data: dict[str, Any]) -> None:
        """Any dict of tensors, lists and plain values; loadable with weights_only=True."""
        import torch

        buf = io.BytesIO()
        torch.save(data, buf)
        atomic_write(self.path / name, buf.getvalue())

    def load_tensors(self, name: str) -> dict[str, Any]:
        return load_tensors(self.path, name)
