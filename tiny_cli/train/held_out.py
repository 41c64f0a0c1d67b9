"""The outcomes of held-out data, by name, and how they read: no torch here, so the
read-out and the tables can say them without it (the rule is `outcomes.held_out`)."""

from __future__ import annotations

# what became of the held-out inputs (a config's `data.train_fraction` < 1)
HELD_OUT = ("generalised", "grokked", "memorised", "not learned")
GROK_EPOCHS = 100  # G: test inputs solved more than G epochs after the training inputs
TEST_ACCURACY = 0.99  # the test side of a classification is solved at this accuracy


def words(outcome: str, delay: int | None, g: int = GROK_EPOCHS) -> str:
    """How a held-out outcome reads: "grokked after 1,500 epochs" (the test inputs solved
    that long after the training inputs), "generalised within 100 epochs", "memorised",
    "not learned"."""
    if outcome == "grokked" and delay is not None:
        return f"grokked after {delay:,} epochs"
    if outcome == "generalised":
        return f"generalised within {g:,} epochs"
    return outcome
