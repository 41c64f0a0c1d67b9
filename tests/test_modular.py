"""Modular arithmetic: the task against plain Python, its constructions on every pair as one
batched forward, the Fourier read-out naming the hardwired net's frequencies, the progress
measure, the spectrum picture (spectrum.png: in the run, TensorBoard and the report), and
`tiny hardwire` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from tests.conftest import make_run, tiny_here
from tiny_cli import config
from tiny_cli.spec import models
from tiny_cli.tasks import fourier
from tiny_cli.tasks.modular import Modular
from tiny_cli.train import inits

PLAIN = {"add": lambda a, b, p: (a + b) % p, "sub": lambda a, b, p: (a - b) % p,
         "mul": lambda a, b, p: (a * b) % p}  # fmt: skip


def task(op: str, p: int) -> Modular:
    return Modular(name="modular", op=op, p=p)  # type: ignore[arg-type]


def outputs(state: dict[str, torch.Tensor], t: Modular) -> torch.Tensor:
    """Every pair through the net as one batched forward (`models.batched_forward`)."""
    x, _ = t.data()
    width = state["0.weight"].shape[0]
    arch = models.Arch(2 * t.p, (models.Layer(width, "quadratic"), models.Layer(t.p, "identity")))
    params = {k: v.unsqueeze(0) for k, v in state.items()}
    out, _ = models.batched_forward(arch, params, x.T.unsqueeze(0))
    return out[0].T  # [p^2, p]


def answers(t: Modular) -> torch.Tensor:
    return torch.tensor([PLAIN[t.op](a, b, t.p) for a in range(t.p) for b in range(t.p)])


@pytest.mark.parametrize("op", ["add", "sub", "mul"])
def test_data_is_every_pair_one_hot_against_plain_python(op: str) -> None:
    t = task(op, 7)
    x, y = t.data()
    assert x.shape == (49, 14) and y.shape == (49, 7)
    assert torch.equal(x.sum(dim=1), torch.full((49,), 2.0))
    pairs = t.decode(x)
    assert pairs[:8].tolist() == [[0, b] for b in range(7)] + [[1, 0]]
    assert torch.equal(y.argmax(dim=1), answers(t))


@pytest.mark.parametrize(("op", "p"), [(o, p) for o in ("add", "sub", "mul") for p in (3, 5, 11)])
def test_the_exact_construction_is_right_on_every_pair(op: str, p: int) -> None:
    t = task(op, p)
    (exact, _) = t.constructions(config.load("modadd")[0].init)
    out = outputs(exact.weights(), t)
    assert exact.arch.layers[0].width == fourier.exact_width(op, p)
    assert torch.equal(out.argmax(dim=1), answers(t))
    n = p - 1 if op == "mul" else p
    if op != "mul":  # the derivation's values: 1 - 1/n at the answer, -1/n elsewhere
        right = torch.nn.functional.one_hot(answers(t), p).bool()
        assert torch.allclose(out[right], torch.tensor(1 - 1 / n), atol=1e-5)
        assert torch.allclose(out[~right], torch.tensor(-1 / n), atol=1e-5)


def test_the_exact_construction_holds_at_p_97_for_all_9409_pairs() -> None:
    t = task("add", 97)
    (exact, _) = t.constructions(config.load("modadd")[0].init)
    assert torch.equal(outputs(exact.weights(), t).argmax(dim=1), answers(t))


def test_even_and_composite_moduli_for_add_and_sub() -> None:
    for op, p in (("add", 4), ("sub", 6), ("add", 9)):
        t = task(op, p)
        w1, w2 = fourier.exact_weights(op, p)  # type: ignore[arg-type]
        state = {"0.weight": torch.tensor(w1).float(), "0.bias": torch.zeros(len(w1)),
                 "2.weight": torch.tensor(w2).float(), "2.bias": torch.zeros(p)}  # fmt: skip
        assert torch.equal(outputs(state, t).argmax(dim=1), answers(t))


def test_gromovs_construction_at_a_width_is_seeded_and_right_when_wide() -> None:
    t = task("add", 11)
    arch = models.Arch(22, (models.Layer(256, "quadratic"), models.Layer(11, "identity")))
    built = t.construction_for(config.load("modadd")[0].init, arch)
    assert built is not None and built.name == "Gromov"
    torch.manual_seed(3)
    first = built.weights()
    torch.manual_seed(3)
    assert torch.equal(first["0.weight"], built.weights()["0.weight"])
    assert torch.equal(outputs(first, t).argmax(dim=1), answers(t))


def test_the_fourier_readout_names_exactly_the_hardwired_frequencies() -> None:
    for op, p in (("add", 11), ("mul", 11)):
        w1, w2 = fourier.exact_weights(op, p)  # type: ignore[arg-type]
        doc = fourier.read(op, p, w1, w2)  # type: ignore[arg-type]
        n = p - 1 if op == "mul" else p
        assert doc["key_frequencies"] == list(range(1, n // 2 + 1))
        zero_unit = 2 / (w1**2).sum() if op == "mul" else 0.0  # at no frequency
        assert doc["key_share"] == pytest.approx(1.0 - zero_unit)
        assert doc["distance_to_construction"] == pytest.approx(0.0, abs=1e-12)
    # a net of two frequencies only: exactly those, each unit's own
    rng = np.random.default_rng(0)
    w1, w2 = fourier.gromov_weights("add", 11, 64, rng)
    ks = np.array([u["k"] for u in fourier.read("add", 11, w1, w2)["units"]])
    keep = np.isin(ks, [2, 5])
    doc = fourier.read("add", 11, w1[keep], w2[:, keep])
    assert doc["key_frequencies"] == [2, 5]
    assert all(u["a"][0] == u["b"][0] == u["out"][0] == u["k"] for u in doc["units"])
    assert all(u["share"] == pytest.approx(1.0) for u in doc["units"])
    lines = Modular.meaning_lines({"fourier": doc})
    assert "key frequencies 2, 5 (2 of 5)" in lines[0]


def test_the_phase_of_a_cosine_row_is_read_back() -> None:
    p, k, phi = 13, 3, 0.7
    row = np.cos(2 * np.pi * k * np.arange(p) / p + phi)[None]
    energy, phase = fourier.spectrum(row, np.arange(p), p)
    assert energy.argmax() == k and phase[0, k] == pytest.approx(phi)
    assert energy.sum() == pytest.approx((row**2).sum())


def test_progress_measures_fourier_concentration_per_seed() -> None:
    t = task("add", 11)
    w1, w2 = fourier.exact_weights("add", 11)
    arch = models.Arch(22, (models.Layer(len(w1), "quadratic"), models.Layer(11, "identity")))
    exact = np.concatenate([w1.ravel(), np.zeros(len(w1)), w2.ravel(), np.zeros(11)])
    random = inits.random_inits(arch, [0])
    flat = torch.cat([v.reshape(1, -1) for v in random.values()], dim=1)
    params = torch.cat([torch.tensor(exact, dtype=torch.float32)[None], flat])
    measured = t.progress(arch, params)
    assert set(measured) == {"fourier_concentration", "fourier_top5"}
    concentration, top5 = measured["fourier_concentration"], measured["fourier_top5"]
    assert concentration.shape == top5.shape == (2,)
    assert concentration[0].item() == pytest.approx(1.0, abs=1e-5)  # each unit one frequency
    assert top5[0].item() == pytest.approx(1.0, abs=1e-5)  # 5 frequencies: all of them
    assert concentration[1].item() < 0.5 and top5[1].item() < 0.99  # a random init: spread


def test_tiny_hardwire_modadd_is_exact_and_reads_its_frequencies(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = ["--set", "task.p=11", "--set", "data.train_fraction=1", "--runs-dir", str(tmp_path)]
    code, out, err = tiny_here(capsys, monkeypatch, "hardwire", "modadd", *args)
    assert code == 0, err
    assert "key frequencies 1, 2, 3, 4, 5 (5 of 5)" in " ".join(out.split())
    (run,) = tmp_path.iterdir()
    assert f"spectrum picture: {run / 'spectrum.png'}" in out
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == 1.0
    arch = json.loads((run / "run.json").read_text())
    assert "40 quadratic" in json.dumps(arch)
    # `tiny export`'s JSON carries the same reading beside the canonical net
    code, out, err = tiny_here(capsys, monkeypatch, "export", run.name, "--runs-dir", str(tmp_path))
    assert code in (0, None), err
    fourier = json.loads(out)["meaning"]["fourier"]
    assert fourier["basis"] == "Z_11" and fourier["key_frequencies"] == [1, 2, 3, 4, 5]


def test_the_spectrum_puts_each_exact_unit_on_its_own_frequency() -> None:
    """The exact construction is 8 units per frequency k = 1 ... p // 2 (cos and sin of k(i
    + j), each product two quadratic units, `fourier.exact_weights`): its spectrum, sorted,
    is that staircase, every unit's whole norm on its one frequency."""
    p = 11
    w1, _ = fourier.exact_weights("add", p)
    rng = np.random.default_rng(0)
    layer = SimpleNamespace(weight=w1[rng.permutation(len(w1))])  # (any order: it is sorted)
    net = SimpleNamespace(inputs=2 * p, skip=False, layers=[layer])
    (picture,) = task("add", p).pictures([("hardwired", net)])  # type: ignore[list-item]
    assert picture.name == "spectrum.png" and len(picture.panels) == 1
    shares = picture.panels[0].values
    assert shares.shape == (8 * (p // 2), p // 2 + 1)  # units by frequencies 0 ... (p - 1) / 2
    expected = np.zeros_like(shares)
    expected[np.arange(len(shares)), np.repeat(np.arange(1, p // 2 + 1), 8)] = 1.0
    np.testing.assert_allclose(shares, expected, atol=1e-9)
    assert task("add", p).pictures([("a and b as numbers", SimpleNamespace(inputs=2))]) == []


def _figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The figures `show.taskplot` draws from now on, in this process (no sidecar)."""
    from tiny_cli.show import taskplot

    monkeypatch.setenv("TINY_SIDECAR", "0")
    drawn: list[Any] = []
    figure = taskplot.figure
    monkeypatch.setattr(taskplot, "figure", lambda pic: drawn.append(figure(pic)) or drawn[-1])
    return drawn


def _panels(fig: Any) -> list[str]:
    """A figure's heat maps (not its colour bar), by their titles."""
    return [ax.get_title(loc="left") for ax in fig.axes if ax.images]


@pytest.fixture(scope="module")
def modadd_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Any]]:
    """A hardwired modadd and one trained 2 epochs (p = 11), in one runs directory, each
    with the figure its spectrum.png was drawn from."""
    root = tmp_path_factory.mktemp("modadd") / "runs"
    made = {}
    for kind, epochs in (("hardwire", None), ("train", 2)):
        with pytest.MonkeyPatch.context() as monkeypatch:
            drawn = _figures(monkeypatch)
            run = make_run(root, kind, "modadd", epochs=epochs, sets=["task.p=11"])
        (fig,) = drawn
        made[kind] = (run, fig)
    return made


def test_spectrum_png_of_a_trained_run_has_its_first_and_last_epoch_everywhere(
    modadd_runs: dict[str, tuple[Path, Any]],
) -> None:
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tiny_cli.show import report
    from tiny_cli.store import runs

    run, fig = modadd_runs["train"]
    titles = _panels(fig)
    assert len(titles) == 2 and titles[0].startswith("epoch 0") and titles[1].startswith("epoch 2")
    assert [t.split(":")[0] for t in _panels(modadd_runs["hardwire"][1])] == ["hardwired"]
    with Image.open(run / "spectrum.png") as image:  # the file beside prediction.png
        assert image.format == "PNG" and image.size == fig.canvas.get_width_height()
        assert image.size[0] >= 1000 and image.size[1] >= 500
    acc = EventAccumulator(str(run), size_guidance={"images": 0})
    acc.Reload()
    (shown,) = acc.Images("task/spectrum")  # TensorBoard's IMAGES, at the last epoch
    assert shown.step == 2 and shown.encoded_image_string == (run / "spectrum.png").read_bytes()
    contents = report.gather(runs.read(runs.Run(run)), charts=False)
    assert [(h, png) for h, _, png in contents.task_pictures] == [
        ("Fourier spectrum", (run / "spectrum.png").read_bytes())
    ]
    assert "(spectrum.png)</figcaption>" in report.body_html(contents)


def test_tiny_inspect_lists_a_runs_pictures_as_data(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    modadd_runs: dict[str, tuple[Path, Any]],
    tmp_path: Path,
) -> None:
    """Text and --json name the run's pictures; a file named like markup is shown as it is,
    a link is not listed."""
    import shutil

    run = shutil.copytree(modadd_runs["hardwire"][0], tmp_path / "runs" / "copy")
    (run / "[red]odd.png").write_bytes(b"")
    (run / "link.png").symlink_to(run / "spectrum.png")
    where = ["--runs-dir", str(run.parent)]
    code, out, err = tiny_here(capsys, monkeypatch, "inspect", run.name, "--json", *where)
    assert code in (0, None), err
    names = [Path(p).name for p in json.loads(out)["pictures"]]
    assert names == ["[red]odd.png", "prediction.png", "spectrum.png", "units.png"]
    code, out, err = tiny_here(capsys, monkeypatch, "inspect", run.name, *where)
    assert "[red]odd.png, prediction.png, spectrum.png, units.png" in " ".join(out.split())


def test_tiny_compare_shows_both_runs_frequencies_and_distances(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    modadd_runs: dict[str, tuple[Path, Any]],
) -> None:
    (hard, _), (trained, _) = modadd_runs["hardwire"], modadd_runs["train"]
    where = ["--runs-dir", str(hard.parent)]
    code, out, err = tiny_here(capsys, monkeypatch, "compare", hard.name, trained.name, *where)
    assert code in (0, None), err
    meant = out[out.index("What each net means for its task") :]
    shown = " ".join(meant.split())
    assert shown.count("Fourier (Z_11") == 2 and shown.count("distance to the exact") == 2
    assert "key frequencies 1, 2, 3, 4, 5 (5 of 5), holding 100.0%" in shown  # the hardwired
    assert meant.index("hardwired") < meant.index("trained")
    code, out, err = tiny_here(
        capsys, monkeypatch, "compare", hard.name, trained.name, "--json", *where
    )
    readings = [r["meaning"]["fourier"] for r in json.loads(out)["runs"]]
    assert readings[0]["key_frequencies"] == [1, 2, 3, 4, 5]
    assert readings[0]["distance_to_construction"] < readings[1]["distance_to_construction"]
    # at 80 columns: every line fits, the meanings wrapped under their runs
    from tests.test_render import text_of
    from tiny_cli.read import stored
    from tiny_cli.show import render
    from tiny_cli.store import runs

    found = stored.compare_runs([runs.read(runs.Run(p)) for p in (hard, trained)])
    infos = found.infos
    view = render.compare_view(
        found.records, [i.config for i in infos], [i.params for i in infos],
        canonical=[c.as_dict() for c in found.compared], meanings=found.meanings,
        run_tasks=found.tasks,
    )  # fmt: skip
    narrow = text_of(view, 80, crop=False)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert " ".join(narrow.split()).count("distance to the exact construction's spectrum") == 2


def test_seed_k_of_a_sweep_is_seed_k_trained_alone_through_the_gather() -> None:
    """The one-hot first layer runs as a gather (`backprop.one_hot_columns`): seed 1 among
    three ends with the bits of seed 1 trained alone."""
    from tiny_cli.train import data, engine

    cfg, _ = config.load("modadd", [("train.epochs", 20, "test"), ("task.p", 7, "test")])
    d = data.prepare(cfg)
    together = engine.fit(cfg, [0, 1, 2], d.x, d.y)
    alone = engine.fit(cfg.model_copy(update={"seed": 1}), [1], d.x, d.y)
    assert all(torch.equal(together.params[k][1], alone.params[k][0]) for k in alone.params)


def test_a_and_b_as_numbers_train_without_a_construction() -> None:
    t = Modular(name="modular", p=5, encoding="number")
    assert t.net_inputs() == 2 and t.data()[0].shape == (25, 2)
    init = config.load("modadd")[0].init
    arch = models.Arch(2, (models.Layer(8, "quadratic"), models.Layer(5, "identity")))
    assert t.constructions(init) == [] and t.construction_for(init, arch) is None


def test_a_checkpoint_of_a_lone_seed_beside_its_twin_resumes_as_the_seed_alone() -> None:
    """Checkpoints written while a lone seed with a wide layer trained beside a copy of
    itself (seeds [k, k]) resume as seed k alone, to the bits of a run that never stopped."""
    from tiny_cli.train import data, engine

    cfg, _ = config.load("modadd", [("train.epochs", 12, "test"), ("task.p", 7, "test")])
    cfg = cfg.model_copy(update={"seed": 1})
    d = data.prepare(cfg)
    states: list = []
    engine.fit(cfg, [1, 1], d.x, d.y, checkpoint=lambda e, snap, force: states.append(snap()))
    assert states[5]["seeds"] == [1, 1] and states[5]["epoch"] == 6
    resumed = engine.fit(cfg, [1], d.x, d.y, resume=states[5])
    straight = engine.fit(cfg, [1], d.x, d.y)
    assert resumed.status == "completed"
    assert all(torch.equal(resumed.params[k], straight.params[k]) for k in straight.params)


def test_a_chunk_of_wide_nets_on_two_threads_trains_in_two_parts_to_the_same_bits() -> None:
    """On two torch threads `train_chunk` trains a seeds-first net's chunk as two parts side
    by side: every seed's bits, outcome and first solved epochs are the chunk's on one
    thread, the progress counts every seed-epoch once, and a stop request stops both."""
    from tiny_cli.app import sweep
    from tiny_cli.train import data

    cfg, _ = config.load("modadd", [("train.epochs", 30, "test"), ("task.p", 7, "test")])
    d = data.prepare(cfg)
    before = torch.get_num_threads()
    counted: list[int] = []
    try:
        torch.set_num_threads(1)
        assert sweep.side_by_side(cfg, 5) == 1
        one = sweep.train_chunk(cfg, range(5), data=d)
        torch.set_num_threads(2)
        assert sweep.side_by_side(cfg, 5) == 2 and sweep.side_by_side(cfg, 1) == 1
        two = sweep.train_chunk(cfg, range(5), counted.append, data=d)
        stopped = sweep.train_chunk(cfg, range(5), should_stop=lambda: True, data=d)
    finally:
        torch.set_num_threads(before)
    assert one is not None and two is not None and stopped is None
    assert sum(counted) == 5 * 30
    assert two["seeds"].tolist() == [0, 1, 2, 3, 4]
    assert all(torch.equal(one["params"][k], two["params"][k]) for k in one["params"])
    for key in ("loss", "outcome", "epochs", "first_solved", "test_first_solved", "test_loss"):
        assert torch.equal(one[key], two[key]), key
    assert two["curves"]["sketches"].keys() == one["curves"]["sketches"].keys()
    for name, sketch in one["curves"]["sketches"].items():
        assert torch.equal(sketch["counts"], two["curves"]["sketches"][name]["counts"]), name
