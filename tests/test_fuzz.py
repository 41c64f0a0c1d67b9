"""Property-based fuzzing of everything a user types or writes: config files, `--set` and
`--grid` strings, and (a few examples) the real CLI on generated bad configs.

The contract: an input is either a valid config or a `TinyError` whose message is one short
line of plain text; never another exception. Through the CLI: exit 0, 1 or 2, one stderr line
for 1 and 2, no traceback, no run directory for 2, existing runs unchanged.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import REPO, make_run
from tiny_cli import config, tasks
from tiny_cli.errors import TinyError

# TINY_FUZZ_SCALE=20 runs twenty times the examples, with fresh randomness (a deep search);
# the default is a fixed, fast sample for CI.
SCALE = int(os.environ.get("TINY_FUZZ_SCALE", "1"))
FAST = settings(
    max_examples=150 * SCALE,
    deadline=None,
    derandomize=SCALE == 1,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
REAL_KEYS = sorted(config.flat_keys())
TASK_NAMES = sorted(tasks.registry())
WORDS = [
    *TASK_NAMES,
    *config.INIT_MODES,
    "sgd",
    "adam",
    "adamw",
    "mse",
    "bce",
    "l1",
    "relu",
    "sigmoid",
    "identity",
    "relu_chain",
    "min_model",
    "sigmoid_neuron",
    "[/]",
    "[bold red]x",
    "a\nb",
    "\x1b[31m",
    "\r",
    "\u202e",
    "x" * 400,
]


def assert_clean(message: str) -> None:
    """One line of plain text, short enough to read."""
    assert len(message) <= 300, (len(message), message)
    bad = [c for c in message if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029"]
    assert not bad, (bad, message)


# --- strategies -------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, -1, 4096, 10**7, 2**24, 2**63]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1e-9, 0.5, 1e6, 3e38, 1e39, 1e308]),
    st.text(max_size=12),
    st.sampled_from(WORDS),
    st.dates(),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=6) | st.sampled_from(WORDS), inner, max_size=4)
    ),
    max_leaves=12,
)
layers = st.lists(
    st.fixed_dictionaries(
        {"width": st.integers(0, 5000), "activation": st.sampled_from(["relu", "sigmoid", "x"])}
    ),
    max_size=4,
)
# Keys users mean to write (and their near misses), then junk anywhere.
dotted = st.one_of(
    st.sampled_from(REAL_KEYS),
    st.sampled_from(["model.layers", "model.widths", "task.name", "train.epochs"]),
    st.builds(lambda a, b: f"{a}.{b}", st.sampled_from(["task", "model", "train"]), st.text()),
    st.text(max_size=10),
)


def _set(doc: dict[str, Any], key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        doc[head] = value
        return
    child = doc.get(head)
    if not isinstance(child, dict):
        child = doc[head] = {}
    _set(child, rest, value)


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """A shipped config (or nothing) with random keys set to random values."""
    base = draw(st.sampled_from([*config.shipped_names(), None]))
    doc: Any = yaml.safe_load((config.shipped_dir() / f"{base}.yaml").read_text()) if base else {}
    for _ in range(draw(st.integers(0, 4))):
        key = draw(dotted)
        value = draw(layers if key == "model.layers" else values)
        _set(doc, key, value)
    if draw(st.integers(0, 9)) == 0:
        doc = draw(values)  # not even a mapping
    return doc


@st.composite
def texts(draw: st.DrawFn) -> str:
    """YAML text: a dumped document, sometimes with an edit (a duplicate, an alias, junk)."""
    text = yaml.safe_dump(draw(documents()), sort_keys=False, allow_unicode=True)
    edit = draw(st.integers(0, 5))
    lines = text.splitlines(keepends=True)
    at = draw(st.integers(0, len(lines)))
    if edit == 1 and lines:
        lines.insert(at, draw(st.sampled_from(lines)))  # a line twice: a duplicate key
    elif edit == 2:
        lines.insert(at, draw(st.text(max_size=30)) + "\n")
    elif edit == 3:
        lines.append("x: &a [1, 2]\ny: &b [*a, *a, *a]\nz: [*b, *b, *b, *b]\n")
    elif edit == 4:
        lines.append("deep: " + "[" * draw(st.integers(1, 60)) + "]" * 60 + "\n")
    return "".join(lines)


# --- (a) configs, in process -------------------------------------------------------------


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "exp.yaml"


def _load_text(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")
    try:
        cfg, _ = config.load(str(path))
    except TinyError as exc:
        assert_clean(str(exc))
    else:
        assert isinstance(cfg, config.ExperimentConfig)


@FAST
@given(doc=documents())
def test_any_document_validates_or_is_one_clean_line(doc: Any) -> None:
    try:
        cfg = config.validate(doc, "exp.yaml")
    except TinyError as exc:
        assert_clean(str(exc))
    else:
        assert isinstance(cfg, config.ExperimentConfig)


@FAST
@given(text=texts())
def test_any_yaml_file_loads_or_is_one_clean_line(scratch: Path, text: str) -> None:
    _load_text(scratch, text)


@settings(FAST, max_examples=60 * SCALE)
@given(text=st.text(max_size=200))
def test_any_text_file_loads_or_is_one_clean_line(scratch: Path, text: str) -> None:
    _load_text(scratch, text.replace("\x00", ""))  # NUL: a reader error, tested elsewhere


# --- (b) --set and --grid strings ----------------------------------------------------------

set_items = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(REAL_KEYS) | st.text(max_size=8),
        st.text(max_size=30) | st.sampled_from(WORDS) | scalars.map(str),
    ),
)
grid_values = st.lists(
    st.text(max_size=8) | st.sampled_from(WORDS[:20]) | scalars.map(str) | st.just("[1,2,1]"),
    min_size=1,
    max_size=4,
)
grid_items = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda k, vs, sep: f"{k}={sep.join(vs)}",
        st.sampled_from(REAL_KEYS) | st.text(max_size=8),
        grid_values,
        st.sampled_from([",", ";"]),
    ),
)


@FAST
@given(items=st.lists(set_items, max_size=3))
def test_any_set_string_parses_or_is_one_clean_line(items: list[str]) -> None:
    try:
        overrides = [config.parse_override(item) for item in items]
        cfg, _ = config.load("lt10", overrides)
    except TinyError as exc:
        assert_clean(str(exc))
    else:
        assert isinstance(cfg, config.ExperimentConfig)


@FAST
@given(items=st.lists(grid_items, max_size=2), name=st.sampled_from(["lt10", "min", "is_even"]))
def test_any_grid_string_parses_or_is_one_clean_line(items: list[str], name: str) -> None:
    try:
        axes = config.parse_grid(items)
        config.check_sweep_size(axes, range(10), items)
        if len(axes) == 0 or max(len(v) for _, v in axes) <= 8:
            points = config.grid_points(name, [], axes)
            assert len({p.cfg.model_dump_json() for p in points}) == len(points)
    except TinyError as exc:
        assert_clean(str(exc))


# --- (c) the real CLI, a few examples ---------------------------------------------------------


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[Path, bytes]]:
    """A runs directory with one real run (`tiny hardwire lt10`, made once, in-process), and
    the bytes of its files."""
    runs = tmp_path_factory.mktemp("fuzz-runs") / "runs"
    make_run(runs, "hardwire", "lt10")
    return runs, _snapshot(runs)


def _snapshot(runs: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in sorted(runs.rglob("*")) if p.is_file()}


def _tiny(*args: str, runs: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TINY_RUNS_DIR": str(runs), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "tiny_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@settings(FAST, max_examples=4)
@given(text=texts(), command=st.sampled_from(["train", "hardwire"]))
def test_the_cli_on_generated_configs_keeps_its_contract(
    stored: tuple[Path, dict[Path, bytes]], text: str, command: str
) -> None:
    runs, before = stored
    work = runs.parent / "work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    (work / "exp.yaml").write_text(text, encoding="utf-8")
    ids = {p.name for p in runs.iterdir()}
    extra = ["--epochs", "0"] if command == "train" else []
    proc = _tiny(command, "exp.yaml", *extra, runs=runs, cwd=work)
    assert proc.returncode in (0, 1, 2), (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr + proc.stdout
    if proc.returncode:
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
        assert_clean(proc.stderr.strip())
    if proc.returncode == 2:
        assert {p.name for p in runs.iterdir()} == ids
    now = _snapshot(runs)
    assert {p: now[p] for p in before} == before
