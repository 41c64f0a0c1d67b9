"""The article's constructions: one pure function per task, returning a state_dict.

Parameter names are the article's (`0.weight`, `fc1.weight`, ...), so the returned dicts load
into the article's own classes with `load_state_dict`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

StateDict = dict[str, Tensor]


def _t(values: Any) -> Tensor:
    return torch.tensor(values, dtype=torch.float32)


def lt10(threshold: float = 10.0, scale: float = 1.0) -> StateDict:
    """x < t as one neuron: F(x) = Sigmoid(s * (t - x)) = Sigmoid(-s * x + s * t).

    The bias is the neuron's threshold. With s = 1, F(9.5) = Sigmoid(0.5) = 0.62; with
    s = 100, F(9.5) = Sigmoid(50) ~ 1. Any s > 0 classifies every x correctly (F(x) > 0.5
    exactly when x < t); a larger s only pushes the outputs towards 0 and 1.
    """
    return {"0.weight": _t([[-scale]]), "0.bias": _t([scale * threshold])}


def min_equation1() -> StateDict:
    """min(a, b) = 0.5 * (a + b - ReLU(b - a) - ReLU(a - b))   (the article's Equation 1).

    fc1 computes ReLU(a - b), fc2 computes ReLU(b - a); the output layer reads
    [a, b, ReLU(a - b), ReLU(b - a)] with weights [0.5, 0.5, -0.5, -0.5]. Exact for all reals.
    """
    return {
        "fc1.weight": _t([[1.0, -1.0]]),
        "fc1.bias": _t([0.0]),
        "fc2.weight": _t([[-1.0, 1.0]]),
        "fc2.bias": _t([0.0]),
        "output_layer.weight": _t([[0.5, 0.5, -0.5, -0.5]]),
        "output_layer.bias": _t([0.0]),
    }


def is_even(bits: int) -> StateDict:
    """x mod 2 on [0, 2^n) as f_1 . f_1 . f_2 . f_4 ... f_(2^(n-1)) (x), with f_c(x) = |x - c|.

    Each |h - c| is two ReLU neurons, ReLU(-(h) + c) + ReLU(h - c); the next layer sums the
    pair, which is why every weight matrix after the first is [[-1, -1], [1, 1]] and the bias
    pair is [c, -c]. For x in [0, 2^k], |x - 2^(k-1)| lies in [0, 2^(k-1)], so after
    c = 2^(n-1), ..., 2, 1 the value is in [0, 1]; subtracting an even c keeps the parity, and
    the two f_1 together keep it too, so the result is x mod 2. The output layer adds the
    last pair: weight [[1, 1]], bias 0 (its ReLU is the identity on {0, 1}).

    The layers are `Linear` at even indices of an `nn.Sequential` with a ReLU after each,
    as in the article's `create_sequential_model([1, 2, 2, 2, 2, 2, 1])` for n = 4.
    """
    if bits < 1:
        raise ValueError("bits must be at least 1")
    centres = [2**k for k in range(bits - 1, -1, -1)] + [1]
    state: StateDict = {}
    for i, c in enumerate(centres):
        weight = [[-1.0], [1.0]] if i == 0 else [[-1.0, -1.0], [1.0, 1.0]]
        state[f"{2 * i}.weight"] = _t(weight)
        state[f"{2 * i}.bias"] = _t([float(c), -float(c)])
    out = 2 * len(centres)
    state[f"{out}.weight"] = _t([[1.0, 1.0]])
    state[f"{out}.bias"] = _t([0.0])
    return state


# task name -> construction for that task's article architecture, from the resolved config.
CONSTRUCTIONS: dict[str, Callable[[Any], StateDict]] = {
    "lt10": lambda cfg: lt10(cfg.task.threshold, cfg.init.scale),
    "min": lambda cfg: min_equation1(),
    "is_even": lambda cfg: is_even(cfg.task.bits),
}
