"""Held-out outcomes (generalised, grokked, memorised, not learned), the progress measures
over training in TensorBoard, and a sweep's phase diagram."""

from __future__ import annotations

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.custom_scalar import layout_pb2
from tensorboard.plugins.custom_scalar import metadata as custom_scalars_metadata

from tests.conftest import Make, tiny_here
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
    assert words("generalised", 0) == "generalised (within 100 epochs)"
    assert words("memorised", None) == "memorised"


def _layout(acc: EventAccumulator) -> dict[str, dict[str, list[str]]]:
    """The CUSTOM SCALARS layout as the event file holds it: category -> chart -> tags."""
    (event,) = acc.Tensors(custom_scalars_metadata.CONFIG_SUMMARY_TAG)
    layout = layout_pb2.Layout.FromString(event.tensor_proto.string_val[0])
    return {
        c.title: {ch.title: list(ch.multiline.tag) or [ch.margin.series[0].value] for ch in c.chart}
        for c in layout.category
    }


def test_a_run_with_held_out_data_logs_its_progress_and_says_it_memorised(
    make: Make, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # one-hot mod3 with half its inputs held out: an unseen input's weights never move
    run = make("train", "mod3", epochs=30, sets=["data.train_fraction=0.5", "log.every=5"])
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
    accuracy = {e.step: e.value for e in acc.Scalars("metrics/accuracy")}
    assert accuracy[30] == 1.0 and next(s for s, v in accuracy.items() if v == 1.0) >= first
    assert _layout(acc)["progress"] == {
        "accuracy: training and test": [r"^metrics/(test_)?accuracy$"],
        "total weight norm": [r"^progress/weight_norm$"],
    }
    code, out, _ = tiny_here(capsys, monkeypatch, "inspect", run.name, "--runs-dir",
                             str(run.parent))  # fmt: skip
    assert code == 0
    assert f"held out: memorised (training solved at epoch {first}, test never" in out
