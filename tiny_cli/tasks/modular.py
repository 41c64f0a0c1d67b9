"""Modular arithmetic: c = a op b mod p over all p^2 pairs, one-hot a and b, p classes.

Today's "hello world" of mechanistic interpretability: a net of quadratic units trained on
half the pairs with weight decay first memorises them, then, hundreds of epochs later,
generalises to the other half (grokking, Power et al. 2022; Gromov 2023). What it learns is
read in the Fourier basis (Nanda et al. 2023): `tasks.fourier` has the basis, the
constructions and the read-out; this module is the task around them.

`p`: any integer >= 3 for add and sub (Z_p is a group under addition for every p, and the
constructions hold for every p); a prime for mul (only then are the non-zero residues a
group under multiplication, with a generator). At most MAX_P: the one-hot inputs [p^2, 2p]
and targets [p^2, p] are 12 p^3 bytes of float32 (96 MB at p = 200), and the exact
construction's activations over all pairs 16 p^3 more.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, StrictInt, ValidationInfo, field_validator

from tiny_cli.spec.models import Arch, Layer
from tiny_cli.tasks import fourier
from tiny_cli.tasks.base import (
    Construction,
    Encoding,
    HeatPanel,
    Kind,
    Meaning,
    NetArrays,
    StateDict,
    Task,
    TaskPicture,
    integer_grid,
    layers,
    whole_box,
)

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor

    from tiny_cli.spec.sections import InitConfig

MAX_P = 200
SYMBOL = {"add": "+", "sub": "-", "mul": "*"}
SPECTRUM = "spectrum.png"  # `pictures`: units by frequencies
GROMOV_WIDTH = 512  # `constructions`' Gromov net; any other width through `model.layers`


def _state(w1: np.ndarray, w2: np.ndarray) -> StateDict:
    """A one-hidden-layer net's state_dict (`nn.Sequential(Linear, Square, Linear)`), biases 0."""
    import torch

    first = torch.tensor(w1, dtype=torch.float32)
    out = torch.tensor(w2, dtype=torch.float32)
    return {
        "0.weight": first,
        "0.bias": torch.zeros(len(first)),
        "2.weight": out,
        "2.bias": torch.zeros(len(out)),
    }


@functools.cache
def _bases(op: fourier.Op, p: int) -> tuple[tuple[tuple[np.ndarray, np.ndarray], ...], int]:
    """The a-block's and b-block's `fourier.basis` (rows, their frequencies), and n: made once
    per (op, p), since `progress` runs at every logged epoch."""
    pa, pb, _, n = fourier.positions(op, p)
    return tuple(fourier.basis(pos, n)[:2] for pos in (pa, pb)), n


class Modular(Task):
    """(a op b) mod p as p classes over every pair (a, b) in [0, p)^2, a varying slowest."""

    name: Literal["modular"]
    op: Literal["add", "sub", "mul"] = "add"
    p: StrictInt = Field(31, ge=3)
    encoding: Encoding = "one_hot"

    summary: ClassVar[str] = "(a op b) mod p, op add/sub/mul, one-hot a and b, p classes"
    kind: ClassVar[Kind] = "classification"
    summary_metrics: ClassVar[tuple[str, ...]] = ("accuracy", "test_accuracy")
    picture_files: ClassVar[dict[str, tuple[str, str]]] = {
        SPECTRUM: (
            "Fourier spectrum",
            "each hidden unit's share of its first-layer weight norm per frequency (a and b "
            "together), units sorted by their dominant frequency, at the first and the last "
            f"epoch ({SPECTRUM})",
        )
    }

    @field_validator("p")
    @classmethod
    def _p_fits(cls, p: int, info: ValidationInfo) -> int:
        if p > MAX_P:
            raise ValueError(
                f"p = {p} is too large: at most {MAX_P} (the {p * p:,} one-hot pairs and "
                f"their targets would take {12 * p**3 / 1e6:,.0f} MB of float32)"
            )
        if info.data.get("op") == "mul" and not fourier.is_prime(p):
            raise ValueError(
                f"p = {p} is not prime: mul needs a prime p (only then are 1 ... p - 1 a "
                "group under multiplication); add and sub take any p >= 3"
            )
        return p

    def input_names(self) -> tuple[str, ...]:
        return ("a", "b")

    def integer_ranges(self) -> list[tuple[int, int]] | None:
        return [(0, self.p), (0, self.p)]

    def outputs(self) -> int:
        return self.p

    def size(self) -> int:
        return self.p * self.p

    def data(self) -> tuple[Tensor, Tensor]:
        x = integer_grid((0, self.p), (0, self.p))
        return x, self.truth(x)

    def domain_text(self) -> str:
        return whole_box(self.size(), f"pairs (a, b) in [0, {self.p})^2")

    def picture_title(self) -> str:
        return f"a {SYMBOL[self.op]} b mod {self.p}"

    def truth(self, x: Tensor) -> Tensor:
        import torch

        a, b = x[:, 0].long(), x[:, 1].long()
        c = {"add": a + b, "sub": a - b, "mul": a * b}[self.op]
        return torch.nn.functional.one_hot(torch.remainder(c, self.p), self.p).to(x.dtype)

    def default_model(self) -> dict[str, Any]:
        return layers((256, "quadratic"), (self.p, "identity"))

    def _arch(self, width: int) -> Arch:
        return Arch(self.net_inputs(), (Layer(width, "quadratic"), Layer(self.p, "identity")))

    def constructions(self, init: InitConfig) -> list[Construction]:
        """The exact Fourier net, then Gromov's at GROMOV_WIDTH; none for a and b as numbers
        (both read one-hot features)."""
        if self.encoding != "one_hot":
            return []
        op, p = self.op, self.p
        width = fourier.exact_width(op, p)
        n = fourier.positions(op, p)[3]
        how = "discrete logs" if op == "mul" else "positions"
        return [
            Construction(
                "Fourier, exact",
                f"{width} quadratic units: cos and sin of k(i + j) from xy = ((x + y)^2 - "
                f"(x - y)^2) / 4 for k = 1 ... {n // 2}, read out as sum_k cos k(i + j - l) "
                f"(i, j, l the {how} of a, b, c in Z_{n})",
                self._arch(width),
                lambda: _state(*fourier.exact_weights(op, p)),
            ),
            self._gromov(GROMOV_WIDTH),
        ]

    def _gromov(self, width: int) -> Construction:
        op, p = self.op, self.p

        def weights() -> StateDict:
            import numpy as np
            import torch

            # the init seed: `inits.build` seeds torch with it before asking for weights
            rng = np.random.default_rng(torch.initial_seed())
            return _state(*fourier.gromov_weights(op, p, width, rng))

        return Construction(
            "Gromov",
            f"{width} quadratic units of random frequency and phases (arXiv 2301.02679)",
            self._arch(width),
            weights,
        )

    def construction_for(self, init: InitConfig, arch: Arch) -> Construction | None:
        """The exact construction at its width; Gromov's at any other width of its shape."""
        found = super().construction_for(init, arch)
        if found is not None or self.encoding != "one_hot" or len(arch.layers) != 2:
            return found
        fourier_units = arch.layers[0].width - (1 if self.op == "mul" else 0)
        if arch == self._arch(arch.layers[0].width) and fourier_units >= 1:
            return self._gromov(arch.layers[0].width)
        return None

    def meaning(
        self, net: NetArrays, x: np.ndarray, y: np.ndarray, metrics: Mapping[str, Any]
    ) -> Meaning:
        """The Fourier read-out (`fourier.read`) of a net of one-hot a and b whose first layer
        reads them (and whose second, if it is the last, reads out the p classes)."""
        common = super().meaning(net, x, y, metrics)
        if not self._reads_one_hot(net):
            return common
        w1 = net.layers[0].weight
        w2 = net.layers[1].weight if len(net.layers) == 2 else None
        return {"fourier": fourier.read(self.op, self.p, w1, w2), **common}

    def _reads_one_hot(self, net: NetArrays) -> bool:
        """A net whose first layer reads the one-hot a and b: what the Fourier basis reads."""
        return net.inputs == 2 * self.p and not net.skip and len(net.layers) > 0

    def pictures(self, nets: Sequence[tuple[str, NetArrays]]) -> list[TaskPicture]:
        """The spectrum (`SPECTRUM`): hidden units (rows) by frequencies 0 ... n // 2
        (columns), each cell the share of the unit's first-layer weight norm at that
        frequency (`fourier.unit_shares`), one panel per net. Each panel's units are sorted
        by their dominant frequency (`fourier.dominant_share`, the read-out's), then by
        its share, so a grokked net shows a staircase, one block per key frequency, where a
        random init is a smear; the exact construction is a staircase of 8 units a step,
        all of each unit's norm on its frequency."""
        if not nets or not all(self._reads_one_hot(net) for _, net in nets):
            return []
        panels = []
        for when, net in nets:
            shares = fourier.unit_shares(self.op, self.p, net.layers[0].weight)
            k, share = fourier.dominant_share(shares)
            order = sorted(range(len(k)), key=lambda u: (k[u], -share[u], u))
            pure = int((share >= fourier.KEY_SHARE).sum())
            title = f"{when}: {pure} of {len(k)} units of one frequency"
            panels.append(HeatPanel(title, shares[order]))
        n = fourier.positions(self.op, self.p)[3]
        basis = f"Z_{n}" + (", discrete logs" if self.op == "mul" else "")
        return [
            TaskPicture(
                SPECTRUM,
                f"{self.picture_title()}: each hidden unit's first-layer weight norm by frequency",
                f"frequency k (Fourier basis of {basis}, a and b together)",
                "hidden unit, sorted by its dominant frequency",
                "share of the unit's norm",
                tuple(panels),
            )
        ]

    @classmethod
    def meaning_lines(cls, meaning: Mapping[str, Any]) -> list[str]:
        doc = meaning.get("fourier")
        mine = fourier.lines(doc) if isinstance(doc, Mapping) else []
        return [*mine, *super().meaning_lines(meaning)]

    def progress(self, arch: Arch, params: Tensor) -> dict[str, Tensor]:
        """Progress measures of S seeds' flat parameters [S, P] (the engine's layout: the
        first layer's weight [units, 2p] first, row-major), each [S]:

        - `fourier_concentration`: the share of the first layer's squared weight norm that
          lies in each unit's own dominant frequency (a-block and b-block together), summed
          over the units. A random init spreads each unit over all n // 2 frequencies (0.17
          at p = 31); a unit of the exact construction is one frequency (1.0); the shipped
          modadd, grokked, 0.63. Per unit, since the grokked net uses every frequency (each
          unit one), as the exact construction does;
        - `fourier_top5`: the share of the whole first layer's norm in its fourier.TOP = 5
          largest frequencies (Nanda et al.'s key frequencies: 0.34 for a random init, 0.35
          for the grokked modadd, which keeps all 15)."""
        import torch

        units, fan_in = arch.layers[0].width, arch.inputs
        if fan_in != 2 * self.p:
            return {}
        (a_basis, b_basis), n = _bases(self.op, self.p)
        w = params[:, : units * fan_in].reshape(len(params), units, fan_in)
        shape = (len(params), units, n // 2 + 1)
        energy = torch.zeros(shape, dtype=params.dtype, device=params.device)
        for block, (b, freq) in ((w[..., : self.p], a_basis), (w[..., self.p :], b_basis)):
            coef = block @ torch.tensor(b.T, dtype=params.dtype, device=params.device)
            placed = torch.tensor(freq >= 0, device=params.device)
            index = torch.tensor(freq[freq >= 0], device=params.device)
            energy.index_add_(2, index, coef[..., placed] ** 2)  # [S, units, frequencies]
        total = (w**2).sum(dim=(1, 2))
        own = energy[..., 1:].amax(dim=2).sum(dim=1)
        per_k = energy[..., 1:].sum(dim=1)
        top = per_k.topk(min(fourier.TOP, n // 2), dim=1).values.sum(dim=1)
        safe = torch.where(total > 0, total, 1.0)
        return {
            "fourier_concentration": torch.where(total > 0, own / safe, 0.0),
            "fourier_top5": torch.where(total > 0, top / safe, 0.0),
        }
