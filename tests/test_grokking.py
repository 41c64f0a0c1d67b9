"""Held-out outcomes (generalised, grokked, memorised, not learned), the progress measures
over training in TensorBoard, and a sweep's phase diagram."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars_metadata

from tests.conftest import make_sweep, tiny_here
from tiny_cli import config
from tiny_cli.app import experiment, sweep
from tiny_cli.show import phase, report, sweep_charts
from tiny_cli.spec.models import Arch
from tiny_cli.store import runs
from tiny_cli.tasks.integers import Mod3
from tiny_cli.train import outcomes
from tiny_cli.train.held_out import GROK_EPOCHS, HELD_OUT, words
from tiny_cli.train.outcomes import held_out


def test_the_held_out_rule_on_hand_made_first_solved_epochs() -> None:
    # training first solved at, test first solved at (-1: never)
    train = torch.tensor([100, 100, 100, 100, 100, -1, -1, 300])
    test = torch.tensor([100, 200, 201, 1600, -1, -1, 50, 250])
    outcome, delay = held_out(train, test)
    assert GROK_EPOCHS == 100
    assert [HELD_OUT[int(i)] for i in outcome] == [
        "generalised", "generalised", "grokked", "grokked", "memorised", "not learned",
        "not learned", "generalised",
    ]  # fmt: skip
    assert delay.tolist() == [0, 100, 101, 1500, -1, -1, -1, 0]
    assert [HELD_OUT[int(i)] for i in held_out(train, test, g=2000)[0][:4]] == ["generalised"] * 4
    assert words("grokked", 1500) == "grokked after 1,500 epochs"
    assert words("generalised", 0) == "generalised within 100 epochs"
    assert words("memorised", None) == "memorised"
    # the test side is solved at 99% right (one wrong point in a few hundred is not
    # memorising); the training side at every input right
    acc = torch.tensor([0.98, 0.99, 0.996, 1.0])
    assert outcomes.test_solved("classification", None, acc).tolist() == [False, True, True, True]
    assert outcomes.solved("classification", None, acc).tolist() == [False, False, False, True]


def _layout(acc: EventAccumulator) -> dict[str, dict[str, list[str]]]:
    """The CUSTOM SCALARS layout as the event file holds it: category -> chart -> tags."""
    (event,) = acc.Tensors(custom_scalars_metadata.CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    return {
        c.title: {ch.title: list(ch.multiline.tag) or [ch.margin.series[0].value] for ch in c.chart}
        for c in layout.category
    }


class _Shared(Mod3):
    """mod3 with a progress measure of its own: the share of the first layer's squared
    norm held by its first input unit's weights (a fraction, as the Fourier concentration)."""

    def progress(self, arch: Arch, params: torch.Tensor) -> dict[str, torch.Tensor]:
        first = params[:, : arch.layers[0].width * arch.inputs]
        w = first.reshape(len(params), arch.layers[0].width, arch.inputs)
        return {"share": (w[:, :, 0] ** 2).sum(dim=1) / (w**2).sum(dim=(1, 2))}


def test_a_run_with_held_out_data_logs_its_progress_and_says_it_memorised(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # one-hot mod3 with half its inputs held out: an unseen input's weights never move
    sets = [("train.epochs", 30, "t"), ("data.train_fraction", 0.5, "t"), ("log.every", 5, "t")]
    cfg, _ = config.load("mod3", sets)
    cfg = cfg.model_copy(update={"task": _Shared(**cfg.task.model_dump())})  # + a measure
    run = experiment.run_experiment(cfg, runs_root=tmp_path).run.path
    meta = json.loads((run / "run.json").read_text())
    assert meta["held_out"]["outcome"] == "memorised"
    assert meta["held_out"]["test_solved"] is None and meta["held_out"]["grok_epochs"] == 100
    first = meta["held_out"]["train_solved"]
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    norms = acc.Scalars("progress/weight_norm")
    assert [e.step for e in norms] == list(range(0, 31, 5))
    state = torch.load(run / "model.pt")
    final = torch.cat([v.reshape(-1) for v in state.values()]).norm()
    assert norms[-1].value == pytest.approx(float(final), rel=1e-5)
    w = state["0.weight"]
    share = float((w[:, 0] ** 2).sum() / (w**2).sum())
    assert acc.Scalars("progress/share")[-1].value == pytest.approx(share, rel=1e-5)
    accuracy = {e.step: e.value for e in acc.Scalars("metrics/accuracy")}
    assert accuracy[30] == 1.0 and next(s for s, v in accuracy.items() if v == 1.0) >= first
    assert _layout(acc)["progress"] == {
        "accuracy: training and test": [r"^metrics/(test_)?accuracy$"],
        "total weight norm": [r"^progress/weight_norm$"],
        "share": [r"^progress/share$"],
    }
    code, out, _ = tiny_here(capsys, monkeypatch, "inspect", run.name, "--runs-dir",
                             str(tmp_path))  # fmt: skip
    assert code == 0
    assert f"held out: memorised; training solved at epoch {first}, test never (G = 100" in out


def test_a_sweep_draws_its_phase_diagram_and_logs_its_progress(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # one-hot: the training inputs learned, the held-out ones never (memorised); as a
    # number, one linear layer cannot learn x mod 3 (not learned)
    grid = ["task.encoding=one_hot,number", "data.train_fraction=0.5,0.75"]
    path = make_sweep(tmp_path, "mod3", 2, 40, grid=grid, sets=["log.every=5"])
    summary = json.loads((path / "summary.json").read_text())
    majority = {(p["grid"]["task.encoding"], p["grid"]["data.train_fraction"]):
                p["held_out"]["majority"] for p in summary}  # fmt: skip
    assert majority == {
        ("one_hot", 0.5): "memorised", ("one_hot", 0.75): "memorised",
        ("number", 0.5): "not learned", ("number", 0.75): "not learned",
    }  # fmt: skip
    assert summary[0]["held_out"]["counts"] == {
        "generalised": 0, "grokked": 0, "memorised": 2, "not learned": 0
    }  # fmt: skip
    arrays = torch.load(path / "sweep.pt")
    assert arrays["points"][0]["test_first_solved"].tolist() == [-1, -1]
    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    acc.Reload()
    (image,) = acc.Images("phase_diagram")
    assert image.encoded_image_string.startswith(b"\x89PNG") and image.width >= 1000
    progress = _layout(acc)["progress"]
    assert progress["total weight norm, median over the seeds"] == [
        r"^curves/p\d+/weight_norm/median$"
    ]
    assert [e.step for e in acc.Scalars("curves/p0/weight_norm/median")] == list(range(0, 41, 5))
    code, out, _ = tiny_here(capsys, monkeypatch, "inspect", path.name, "--runs-dir",
                             str(tmp_path))  # fmt: skip
    assert code == 0
    rows = out[out.index("Phase diagram") :].splitlines()
    assert rows[2].split() == ["data.train_fraction", "task.encoding"]
    assert rows[3].split() == ["one_hot", "number"]
    assert rows[4].split() == ["0.75", "mem", "none"]
    assert rows[5].split() == ["0.5", "mem", "none"]
    assert all(len(line) <= 80 for line in rows[:6])
    # the report's section (the whole report draws every grid point's curves: seconds)
    record = runs.read(runs.Run(path))
    chart = sweep_charts.phase_chart(runs.read_summary(record.run))
    assert chart is not None and chart.png.startswith(b"\x89PNG")
    html = report.body_html(report.Contents(record, phase=chart))
    assert "<h2>Phase diagram</h2>" in html


def test_the_phase_diagram_draws_two_axes_and_one_panel_per_value_of_a_third() -> None:
    axes = {"train.weight_decay": [0, 1], "data.train_fraction": [0.3, 0.5], "seed_k": [1, 2]}
    cells = [
        phase.Cell({"train.weight_decay": w, "data.train_fraction": f, "seed_k": k},
                   "grokked" if w else "memorised", 3, 4, 1500.0 if w else None)
        for w in (0, 1) for f in (0.3, 0.5) for k in (1, 2)
    ]  # fmt: skip
    drawn = phase.panels(axes, cells)
    assert [p.title for p in drawn] == ["seed_k=1", "seed_k=2"]
    assert drawn[0].cells[(1, 1)].majority == "grokked"  # y 0.5, x 1
    assert phase.phase_table(axes, cells)[3].split() == ["0.5", "mem", "grok", "1,500"]
    strip = phase.panels({"train.weight_decay": [0, 1]}, [
        phase.Cell({"train.weight_decay": w}, "generalised", 4, 4, 0.0) for w in (0, 1)
    ])  # fmt: skip
    assert strip[0].y is None and set(strip[0].cells) == {(0, 0), (0, 1)}
    png = phase.phase_png(axes, cells)
    assert png is not None and png.startswith(b"\x89PNG")


def test_a_sweep_records_a_tasks_own_progress_measures_without_a_test_set() -> None:
    cfg, _ = config.load("mod3", [("train.epochs", 10, "t")])
    cfg = cfg.model_copy(update={"task": _Shared(**cfg.task.model_dump())})
    part = sweep.train_chunk(cfg, [0, 1])
    assert part is not None and part["curves"]["sketches"]["share"]["scale"] == "fraction"
    assert part["curves"]["sketches"]["share"]["counts"][-1].sum() == 2  # both seeds
    assert "weight_norm" in part["curves"]["sketches"]


def test_a_resumed_run_counts_the_epochs_before_it_stopped(tmp_path: Path) -> None:
    sets = [("train.epochs", 30, "t"), ("data.train_fraction", 0.5, "t"), ("log.every", 1, "t")]
    cfg, _ = config.load("mod3", sets)

    def stop_at_20(stats: object) -> None:  # a real Ctrl-C after epoch 20
        if getattr(stats, "epoch", None) == 20:
            os.kill(os.getpid(), signal.SIGINT)

    out = experiment.run_experiment(cfg, runs_root=tmp_path, progress=stop_at_20)
    before = json.loads((out.run.path / "run.json").read_text())["held_out"]
    assert out.result.status == "interrupted" and before["train_solved"] < 20
    experiment.run_experiment(cfg, runs_root=tmp_path, resume=out.run)
    after = json.loads((out.run.path / "run.json").read_text())
    assert after["status"] == "completed" and after["held_out"] == before  # every epoch logged
