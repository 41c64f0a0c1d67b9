"""Task expressions: the vectorised path equals the plain-Python reference; anything outside
the whitelist is a one-line ExpressionError naming the offending part."""

from __future__ import annotations

import math
import random
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO
from tiny_cli.tasks.expression import MAX_DEPTH, MAX_LENGTH, Expression, ExpressionError, parse

NAMES = ["a", "b"]
_values = torch.arange(-8, 9, dtype=torch.float64)
A, B = (t.flatten() for t in torch.meshgrid(_values, _values, indexing="ij"))
POINTS = list(zip(A.tolist(), B.tolist(), strict=True))


def reference(expr: Expression) -> tuple[torch.Tensor, torch.Tensor]:
    """python() on every grid point (NaN where it raises) and a mask of the points it raised."""
    out, raised = [], []
    for a, b in POINTS:
        try:
            out.append(expr.python(a=a, b=b))
            raised.append(False)
        except ExpressionError:
            out.append(math.nan)
            raised.append(True)
    return torch.tensor(out, dtype=torch.float64), torch.tensor(raised)


def assert_same(source: str) -> None:
    expr = parse(source, NAMES)
    got = expr.evaluate({"a": A, "b": B})  # one batched evaluation over the grid
    want, raised = reference(expr)
    assert got.dtype == torch.float64 and got.shape == A.shape
    torch.testing.assert_close(got[~raised], want[~raised], rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize(
    "source",
    [
        "abs(a - b) % 3",
        "a // 3 - b % 4",
        "a % -3 + a // -3 + -a % 3",
        "(a > b) and a or b",
        "a and b and 7 or 0",
        "a if a < b else b",
        "min(a, b, 3) * max(a, -b)",
        "not (a == b)",
        "(a != b) + (a <= b) + (a >= b) + (not a)",
        "0 <= a < 4",
        "a < b <= 2 != a",
        "a ** 2 - b",
        "2 ** b",
        "-a / 2 + +b",
        "a / (b + 9) - 0.5 * b // 0.75",
        "3",
    ],
)
def test_vectorised_equals_python_on_a_grid(source: str) -> None:
    assert_same(source)


def test_division_by_zero_is_inf_or_nan_in_tensors_and_an_error_in_python() -> None:
    expr = parse("a / b + a % b", NAMES)
    got = expr.evaluate({"a": A, "b": B})
    assert (~torch.isfinite(got) == (B == 0)).all()
    with pytest.raises(ExpressionError, match=r"'a / b' fails at a=1, b=0 \(ZeroDivisionError"):
        expr.python(a=1, b=0)
    assert parse("a if b else 1 / b", NAMES).python(a=1, b=2) == 1.0  # python() short-circuits


def test_names_and_result_shape() -> None:
    expr = parse("b * 2", ["a", "b", "c"])
    assert expr.names == ("a", "b", "c") and expr.used_names() == ("b",)
    inputs = {"a": A, "b": B, "c": A}
    assert torch.equal(parse("7", NAMES).evaluate(inputs), torch.full_like(A, 7.0))
    same = parse("a", NAMES).evaluate(inputs)
    assert torch.equal(same, A) and same is not A  # never the caller's tensor itself
    with pytest.raises(ExpressionError, match="one length"):
        expr.evaluate({"a": A, "b": B[:3], "c": A})


LONG = "a + " * 500 + "a"
DEEP = "-(" * 200 + "a" + ")" * 200

REJECTED = [
    ("__import__('os').system('x')", ["__import__", "not allowed"]),
    ("a.real", ["attribute", "'a.real'"]),
    ("a[0]", ["subscript", "'a[0]'"]),
    ("lambda: 1", ["lambda"]),
    ("[a for a in b]", ["comprehension", "[a for a in b]"]),
    ("c + 1", ["unknown name 'c'", "a, b"]),
    ("foo(a)", ["'foo' is not allowed", "abs, min, max"]),
    ("abs(a, b)", ["abs(a, b)", "exactly 1"]),
    ("min(a)", ["min(a)", "2 or more"]),
    ("max(a, b, key=abs)", ["keyword", "key=abs"]),
    ("abs(*a)", ["starred", "*a"]),
    ("True + a", ["'True'"]),
    ("'x'", ["string", "'x'"]),
    ("1j", ["'1j'"]),
    ("1e999", ["'1e999'", "out of range"]),
    ("a @ b", ["operator", "'a @ b'"]),
    ("a in b", ["operator", "'a in b'"]),
    ("(a := 1)", ["assignment", "a := 1"]),
    ("f'{a}'", ["f-string"]),
    ("abs", ["'abs' is a function"]),
    ("a +", ["syntax error", "'a +'"]),
    ("", ["empty"]),
    ("   ", ["empty"]),
    (LONG, [f"longer than {MAX_LENGTH}"]),
    (DEEP, [f"deeper than {MAX_DEPTH}"]),
    ("-" * 200 + "a", [f"deeper than {MAX_DEPTH}"]),
    ("a\n+ __import__('os')", ["syntax error", "line 2", "+ __import__('os')", r"a\n+"]),
    ("a\x00", ["syntax error", r"\x00"]),
]


def one_line_error(source: str, names: list[str] = NAMES) -> str:
    with pytest.raises(ExpressionError) as info:
        parse(source, names)
    message = str(info.value)
    assert message.isprintable() and len(message) < 200, message
    return message


@pytest.mark.parametrize(("source", "parts"), REJECTED, ids=lambda v: repr(v)[:30])
def test_rejected(source: str, parts: list[str]) -> None:
    message = one_line_error(source)
    assert message.startswith("expression ")
    for part in parts:
        assert part in message, message


@pytest.mark.parametrize(
    ("names", "part"),
    [(["a", "a"], "repeat"), (["1x"], "'1x'"), (["if"], "'if'"), (["min"], "'min'"), ([], "")],
)
def test_bad_names(names: list[str], part: str) -> None:
    assert part in one_line_error("a", names)


def test_importable_without_torch() -> None:
    hide_torch = "import sys; sys.modules['torch'] = None"
    code = f"{hide_torch}; import tiny_cli.tasks.expression as e; e.parse('', '')"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert "ExpressionError" in done.stderr and "ImportError" not in done.stderr, done.stderr


def random_source(rng: random.Random, depth: int = 4) -> str:
    """A random whitelisted expression; `**` only to small powers of integers, so both paths
    stay exact (torch.pow may differ from Python's by an ulp on inexact results)."""
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(["a", "b", str(rng.randint(-3, 5)), "0.5"])

    def sub() -> str:
        return random_source(rng, depth - 1)

    kind = rng.randrange(7)
    if kind == 0:
        return f"({sub()} {rng.choice(['+', '-', '*', '/', '//', '%'])} {sub()})"
    if kind == 1:
        return f"({rng.choice(['a', 'b', '2', '-3'])} ** {rng.randint(0, 3)})"
    if kind == 2:
        return f"({sub()} {rng.choice(['<', '<=', '>', '>=', '==', '!='])} {sub()} < {sub()})"
    if kind == 3:
        return f"({sub()} {rng.choice(['and', 'or'])} {sub()})"
    if kind == 4:
        return f"({sub()} if {sub()} else {sub()})"
    if kind == 5:
        return f"({rng.choice(['-', '+', 'not '])}({sub()}))"
    args = ", ".join(sub() for _ in range(rng.randint(2, 3)))
    return rng.choice([f"abs({sub()})", f"min({args})", f"max({args})"])


def test_random_trees_seeded() -> None:
    rng = random.Random(0)
    for _ in range(60):
        assert_same(random_source(rng))


def test_random_trees_property() -> None:
    hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is not installed")
    st = hypothesis.strategies

    @hypothesis.settings(max_examples=50, deadline=None)
    @hypothesis.given(st.randoms(use_true_random=False))
    def check(rng: random.Random) -> None:
        assert_same(random_source(rng))

    check()
