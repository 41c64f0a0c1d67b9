"""Task expressions: a whitelisted piece of Python arithmetic, evaluated on whole tensors.

A task can be given as an expression over declared inputs, e.g. ``abs(a - b) % 3`` with
inputs ``a, b``. The text is parsed with :mod:`ast` and every node is checked against the
grammar below; nothing is ever handed to ``eval``, ``exec`` or ``compile`` for running.
Grammar (Python's own syntax and precedence)::

    expr  := number | input | unary expr | expr binop expr | expr (cmp expr)+
           | expr and expr | expr or expr | expr if expr else expr | call
    number: an int or float literal (not bool, str, None or complex; finite)
    input : one of the declared names (valid identifiers, not keywords, not abs/min/max)
    unary : +  -  not
    binop : +  -  *  /  //  %  **
    cmp   : <  <=  >  >=  ==  !=        chained as in Python: 0 <= a < 4
    call  : abs(x) | min(x, y, ...) | max(x, y, ...)     positional only; min/max take 2+

The text is at most MAX_LENGTH characters and nests (brackets or syntax tree) at most
MAX_DEPTH deep. Any other construct is an ExpressionError naming the offending part.

Semantics are Python's on float64 values: comparisons and ``not`` give 1.0 or 0.0; a value
is true when it is non-zero; ``x and y`` is y if x is true else x, ``x or y`` is x if x is
true else y; ``%`` takes the sign of the divisor and ``//`` rounds towards minus infinity;
min/max return the first smallest/largest argument. ``Expression.python`` runs the tree on
plain Python floats (the reference); ``Expression.evaluate`` runs it on whole tensors at once
(torch.remainder, floor-rounding torch.div, torch.pow, torch.where for and/or/if), so both
branches are computed and the unused one is discarded. Where Python raises (division or
modulo by zero, overflow in ``**``) the vectorised path yields inf or NaN instead (the caller
checks that targets are finite) and ``python`` raises ExpressionError. A negative number to a
fractional power is NaN in both. ``**`` may differ from Python's by an ulp on inexact results.
"""

from __future__ import annotations

import ast
import keyword
import math
import operator
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tiny_cli.errors import did_you_mean

if TYPE_CHECKING:
    from torch import Tensor

MAX_LENGTH = 1000  # characters
MAX_DEPTH = 64  # nesting of brackets or of the syntax tree
FUNCTIONS = ("abs", "min", "max")
_FUNCS = "(functions: abs, min, max)"

_BINOPS: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_CMPOPS: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_UNARY = (ast.UAdd, ast.USub, ast.Not)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_WORDS: dict[type[ast.AST], str] = {
    ast.Attribute: "attribute access",
    ast.NamedExpr: "assignment expression",
    ast.JoinedStr: "f-string",
    ast.Starred: "starred argument",
}


class ExpressionError(ValueError):
    """A bad expression (or bad values for one): str() is one short line naming the problem."""


def _echo(text: str, limit: int = 80) -> str:
    """`text` quoted with repr's escapes (so it stays on one line), cut to about `limit`."""
    shown = repr(text)
    return shown if len(shown) <= limit else shown[: limit - 4] + "..." + shown[-1]


def _number(node: ast.Constant) -> float:
    assert isinstance(node.value, (int, float))  # parse() lets no other constant through
    return float(node.value)


def _words(node: ast.AST) -> str:
    """A node's kind in plain words: 'attribute access', 'list', 'await', ..."""
    if isinstance(node, _COMPREHENSIONS):
        return "comprehension"
    return _WORDS.get(type(node)) or re.sub(r"(?<!^)(?=[A-Z])", " ", type(node).__name__).lower()


@dataclass(frozen=True)
class Expression:
    """A checked expression over `names`; build it with parse()."""

    source: str
    names: tuple[str, ...]
    _tree: ast.expr = field(repr=False, compare=False)

    def _error(self, detail: str) -> ExpressionError:
        return ExpressionError(f"expression {_echo(self.source)}: {detail}")

    def _segment(self, node: ast.AST) -> str:
        return _echo(ast.get_source_segment(self.source.strip(), node) or _words(node), 40)

    def used_names(self) -> tuple[str, ...]:
        """The declared names the expression uses, in declared order."""
        used = {n.id for n in ast.walk(self._tree) if isinstance(n, ast.Name)}
        return tuple(name for name in self.names if name in used)

    def evaluate(self, inputs: Mapping[str, Tensor]) -> Tensor:
        """The expression on equal-length 1-D tensors (one per declared name), elementwise, as
        a float64 tensor of that length; division by zero gives inf/NaN where Python raises."""
        import torch

        missing = [name for name in self.names if name not in inputs]
        if missing:
            raise self._error(f"no values for {', '.join(missing)}")
        env = {name: torch.as_tensor(inputs[name], dtype=torch.float64) for name in self.names}
        shapes = {tuple(t.shape) for t in env.values()}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise self._error(f"inputs must be 1-D tensors of one length, got {sorted(shapes)}")
        first = env[self.names[0]]

        def true(x: Tensor) -> Tensor:
            return x != 0

        def ev(node: ast.expr) -> Tensor:
            if isinstance(node, ast.Constant):
                return torch.tensor(_number(node), dtype=torch.float64, device=first.device)
            if isinstance(node, ast.Name):
                return env[node.id]
            if isinstance(node, ast.UnaryOp):
                x = ev(node.operand)
                if isinstance(node.op, ast.Not):
                    return (~true(x)).double()
                return -x if isinstance(node.op, ast.USub) else x
            if isinstance(node, ast.BinOp):
                x, y = ev(node.left), ev(node.right)
                if isinstance(node.op, ast.FloorDiv):
                    return torch.div(x, y, rounding_mode="floor")
                if isinstance(node.op, ast.Mod):
                    return torch.remainder(x, y)
                if isinstance(node.op, ast.Pow):
                    return torch.pow(x, y)
                return _BINOPS[type(node.op)](x, y)  # type: ignore[no-any-return]
            if isinstance(node, ast.Compare):
                left, holds = ev(node.left), None
                for op, comparator in zip(node.ops, node.comparators, strict=True):
                    right = ev(comparator)
                    step: Tensor = _CMPOPS[type(op)](left, right)
                    holds = step if holds is None else holds & step
                    left = right
                assert holds is not None
                return holds.double()
            if isinstance(node, ast.BoolOp):
                out = ev(node.values[0])
                for value in node.values[1:]:
                    y = ev(value)
                    if isinstance(node.op, ast.And):
                        out = torch.where(true(out), y, out)
                    else:
                        out = torch.where(true(out), out, y)
                return out
            if isinstance(node, ast.IfExp):
                return torch.where(true(ev(node.test)), ev(node.body), ev(node.orelse))
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            args = [ev(arg) for arg in node.args]
            if node.func.id == "abs":
                return torch.abs(args[0])
            out = args[0]  # like Python's min/max: the first extreme argument wins
            for y in args[1:]:
                out = torch.where(y < out if node.func.id == "min" else y > out, y, out)
            return out

        result = ev(self._tree)
        if result.dim() == 0:
            return result.expand(first.shape[0]).clone()
        return result.clone() if any(result is t for t in env.values()) else result

    def python(self, **values: float) -> float:
        """The expression on plain Python floats: the reference for evaluate()."""
        unknown = sorted(set(values) - set(self.names))
        missing = [name for name in self.names if name not in values]
        if unknown or missing:
            raise self._error(f"values must be given for exactly {', '.join(self.names)}")
        env = {name: float(value) for name, value in values.items()}

        def ev(node: ast.expr) -> float:
            if isinstance(node, ast.Constant):
                return _number(node)
            if isinstance(node, ast.Name):
                return env[node.id]
            if isinstance(node, ast.UnaryOp):
                x = ev(node.operand)
                if isinstance(node.op, ast.Not):
                    return float(not x)
                return -x if isinstance(node.op, ast.USub) else x
            if isinstance(node, ast.BinOp):
                x, y = ev(node.left), ev(node.right)
                try:
                    out = _BINOPS[type(node.op)](x, y)
                except (ZeroDivisionError, OverflowError) as exc:
                    at = ", ".join(f"{k}={v:g}" for k, v in env.items())
                    what = f"{type(exc).__name__}: {exc}"
                    raise self._error(f"{self._segment(node)} fails at {at} ({what})") from None
                return math.nan if isinstance(out, complex) else float(out)
            if isinstance(node, ast.Compare):
                left = ev(node.left)
                for op, comparator in zip(node.ops, node.comparators, strict=True):
                    right = ev(comparator)
                    if not _CMPOPS[type(op)](left, right):
                        return 0.0
                    left = right
                return 1.0
            if isinstance(node, ast.BoolOp):
                for value in node.values[:-1]:
                    x = ev(value)
                    if bool(x) != isinstance(node.op, ast.And):
                        return x
                return ev(node.values[-1])
            if isinstance(node, ast.IfExp):
                return ev(node.body) if ev(node.test) else ev(node.orelse)
            assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            args = [ev(arg) for arg in node.args]
            if node.func.id == "abs":
                return abs(args[0])
            return min(args) if node.func.id == "min" else max(args)

        return ev(self._tree)


def parse(source: str, names: Sequence[str]) -> Expression:
    """Check `source` against the grammar (see the module docstring) over the input `names`."""
    if not isinstance(source, str):
        raise ExpressionError(f"expression must be a string, got {type(source).__name__}")

    def fail(detail: str) -> ExpressionError:
        return ExpressionError(f"expression {_echo(source)}: {detail}")

    _check_names(names, fail)
    if len(source) > MAX_LENGTH:
        raise fail(f"longer than {MAX_LENGTH} characters ({len(source)})")
    text = source.strip()
    tree = _syntax_tree(text, fail)
    _Checker(text, tuple(names), fail).check(tree, 1)
    return Expression(source, tuple(names), tree)


Fail = Callable[[str], ExpressionError]


def _check_names(names: Sequence[str], fail: Fail) -> None:
    """The declared input names: identifiers, not functions, NFKC-normal, distinct."""
    if isinstance(names, str) or not names:
        raise fail("declare the input names as a non-empty list")
    for name in names:
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise fail(f"input name {_echo(str(name), 40)} is not a valid identifier")
        if name in FUNCTIONS:
            raise fail(f"input name {name!r} is taken by the function {name}()")
        if unicodedata.normalize("NFKC", name) != name:  # Python reads names NFKC-normalised
            raise fail(f"input name {_echo(name, 40)} is not NFKC-normalised")
    if len(set(names)) != len(names):
        raise fail(f"input names repeat: {', '.join(names)}")


def _syntax_tree(text: str, fail: Fail) -> ast.expr:
    """Python's parse of `text` as one expression, its brackets' depth bounded first."""
    if not text:
        raise fail("is empty")
    level = deepest = 0
    for char in text:
        level += (char in "([{") - (char in ")]}")
        deepest = max(deepest, level)
    if deepest > MAX_DEPTH:
        raise fail(f"brackets nested deeper than {MAX_DEPTH} levels")
    try:
        return ast.parse(text, mode="eval").body
    except SyntaxError as exc:
        line = exc.text.splitlines()[0] if exc.text and exc.text.strip() else ""
        near = line[max((exc.offset or 1) - 1, 0) :].strip() or line.strip()
        where = f" at line {exc.lineno}" if "\n" in text else ""
        near = f" near {_echo(near, 40)}" if near else ""
        raise fail(f"syntax error: {exc.msg}{where}{near}") from None
    except (ValueError, RecursionError, MemoryError):
        raise fail("cannot be parsed (too complex or invalid characters)") from None


class _Checker:
    """Every node of a parsed expression against the grammar, depth bounded."""

    def __init__(self, text: str, names: tuple[str, ...], fail: Fail) -> None:
        self.text, self.names, self.fail = text, names, fail

    def segment(self, node: ast.AST) -> str:
        return _echo(ast.get_source_segment(self.text, node) or _words(node), 40)

    def check(self, node: ast.AST, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        for child in self.children(node):
            self.check(child, depth + 1)

    def children(self, node: ast.AST) -> list[ast.expr]:
        """The node's operands, once the node itself is allowed."""
        fail, segment = self.fail, self.segment
        if isinstance(node, ast.Constant):
            self.constant(node)
            return []
        if isinstance(node, ast.Name):
            self.name(node)
            return []
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, _UNARY):
            return [node.operand]
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return [node.left, node.right]
        if isinstance(node, ast.Compare):
            if any(type(op) not in _CMPOPS for op in node.ops):
                raise fail(f"the operator in {segment(node)} is not allowed (is, in, ...)")
            return [node.left, *node.comparators]
        if isinstance(node, ast.BoolOp):
            return node.values
        if isinstance(node, ast.IfExp):
            return [node.test, node.body, node.orelse]
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, (ast.UnaryOp, ast.BinOp)):
            raise fail(f"the operator in {segment(node)} is not allowed (@, <<, |, ~, ...)")
        raise fail(f"{_words(node)} {segment(node)} is not allowed")

    def constant(self, node: ast.Constant) -> None:
        if type(node.value) not in (int, float):
            what = "string" if isinstance(node.value, str) else "constant"
            raise self.fail(
                f"{what} {self.segment(node)} is not allowed (numbers: int or float only)"
            )
        try:
            finite = math.isfinite(_number(node))
        except OverflowError:
            finite = False
        if not finite:
            raise self.fail(f"number {self.segment(node)} is out of range")

    def name(self, node: ast.Name) -> None:
        if node.id in FUNCTIONS:
            raise self.fail(f"{node.id!r} is a function: call it, as in {node.id}(x)")
        if node.id not in self.names:
            hint = did_you_mean(node.id, self.names)
            declared = ", ".join(self.names)
            raise self.fail(f"unknown name {node.id!r}{hint} (declared inputs: {declared})")

    def call(self, node: ast.Call) -> list[ast.expr]:
        fail, segment, func = self.fail, self.segment, node.func
        if not isinstance(func, ast.Name) or func.id not in FUNCTIONS:
            raise fail(f"calling {segment(func)} is not allowed {_FUNCS}")
        if node.keywords:
            raise fail(f"keyword arguments in {segment(node)} are not allowed")
        count = len(node.args)
        if func.id == "abs" and count != 1:
            raise fail(f"{segment(node)}: abs takes exactly 1 argument, got {count}")
        if func.id != "abs" and count < 2:
            raise fail(f"{segment(node)}: {func.id} takes 2 or more arguments, got {count}")
        return node.args
