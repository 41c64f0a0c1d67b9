"""The package's spine: layers that import only downward, no import cycle, one activation
table that every forward reads, no task named outside tasks/."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import numpy as np
import pytest
import sympy
import torch

from tests.conftest import REPO
from tiny_cli import tasks
from tiny_cli.read import arrays
from tiny_cli.spec import activations, models
from tiny_cli.train import backprop

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_layers_contract_holds_and_breaks_on_an_upward_import(tmp_path: Path) -> None:
    assert lint_imports(REPO).returncode == 0
    # The same package with one upward import (spec, the bottom, importing the CLI), lazily
    # inside a function as most of ours are: the contract is broken and says where.
    shutil.copytree(REPO / "tiny_cli", tmp_path / "tiny_cli")
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    spec = tmp_path / "tiny_cli" / "spec" / "models.py"
    spec.write_text(spec.read_text() + "\n\ndef _upward() -> None:\n    from tiny_cli import cli\n")
    broken = lint_imports(tmp_path)
    assert broken.returncode != 0
    assert "BROKEN" in broken.stdout and "tiny_cli.spec.models -> tiny_cli.cli" in broken.stdout


def test_no_module_imports_itself_back_through_others() -> None:
    """No import cycle at all, packages and their own modules included (the acyclic
    contract only sees siblings): Tarjan's strongly connected components of the graph."""
    graph = grimp.build_graph("tiny_cli")
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            if component:
                cycles.append(sorted([v, *component]))

    for module in sorted(edges):
        if module not in index:
            visit(module)
    assert cycles == []


def test_the_test_command_runs_the_contract() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert "lint-imports" in ci and "lint-imports && .venv/bin/pytest" in readme


@pytest.mark.parametrize("name", sorted(activations.TABLE))
def test_every_consumer_computes_the_same_activation(name: str) -> None:
    """One entry of the table, read four ways: the nn module a checkpoint is, the engine's
    torch function and hand-written gradient, the read-out's numpy and the formula's sympy."""
    entry = activations.get(name)
    z = torch.linspace(-6, 6, 97, dtype=torch.float64)
    h = entry.torch(z)
    module = entry.module()
    if module is not None:
        assert torch.equal(module(z), h)
    else:
        assert entry.linear and torch.equal(h, z)
    assert np.allclose(entry.numpy(z.numpy().copy(), np.zeros(len(z))), h.numpy(), atol=1e-12)
    x = sympy.Symbol("x", real=True)
    as_function = sympy.lambdify(x, entry.sympy(x), "numpy")
    sampled = [float(as_function(float(v))) for v in z[::8]]
    assert np.allclose(sampled, h[::8].numpy(), atol=1e-12)
    assert np.allclose(arrays.activate(name, z.numpy().copy()), h.numpy(), atol=1e-12)
    # the engine's gradient, from h alone (z where h cannot tell it), is autograd's
    leaf = z.clone().requires_grad_()
    upstream = torch.cos(z)
    (auto,) = torch.autograd.grad(entry.torch(leaf), leaf, upstream)
    by_hand = entry.grad(upstream, z if entry.from_z else h, torch.empty_like(z))
    assert torch.allclose(by_hand, auto, atol=1e-12)
    # flags the forwards rely on
    if entry.rectifier:
        assert torch.equal(h > 0, z > 0) and bool((h >= 0).all())
    if entry.homogeneous:
        assert torch.allclose(entry.torch(2.5 * z), 2.5 * h)
    if entry.probability:
        assert bool(((h > 0) & (h < 1)).all())


def test_a_layer_of_every_activation_trains_through_the_one_table() -> None:
    """Every activation in a net: the module a checkpoint loads into and the batched engine
    agree on the outputs (both read the table and the skip rule)."""
    for name in activations.TABLE:
        arch = models.Arch(2, (models.Layer(3, name), models.Layer(1, "identity")), skip_input=True)
        torch.manual_seed(0)
        module = arch.module()
        params = {k: v.detach().unsqueeze(-1) for k, v in module.state_dict().items()}
        x = torch.randn(5, 2)
        net = backprop.SeedNets(arch, params)
        out, _ = net.forward(x.T.unsqueeze(-1))
        assert torch.allclose(out[0, :, 0], module(x)[:, 0], atol=1e-6), name


def test_no_task_is_named_outside_tasks() -> None:
    """A module outside tasks/ that names a task (`if task.name == "min"`) is where a task's
    meaning is guessed instead of asked: every task name and alias, as a string literal."""
    names = set(tasks.registry())
    found = []
    # `tiny reproduce`'s claims run the shipped configs by name (lt10, min, is_even), as the
    # README does: they name experiments, and ask the stored runs for every number.
    claims = REPO / "tiny_cli" / "app" / "reproduce.py"
    for path in sorted((REPO / "tiny_cli").rglob("*.py")):
        if "tasks" in path.relative_to(REPO / "tiny_cli").parts[:1] or path == claims:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and node.value in names:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.value!r}")
    assert found == []


def test_a_plugin_written_for_the_flat_package_still_imports() -> None:
    """Plugins of before the layers import `tiny_cli.models`, `tiny_cli.schema` and
    `tiny_cli.config.InitConfig`; the plugin API is now `tiny_cli.tasks`: the same classes."""
    from tiny_cli import config
    from tiny_cli import models as old_models
    from tiny_cli import schema as old_schema
    from tiny_cli.spec import schema, sections

    assert old_models.Arch is tasks.Arch is models.Arch and old_models.Layer is models.Layer
    assert old_schema.Bound is tasks.Bound is schema.Bound
    assert config.InitConfig is tasks.InitConfig is sections.InitConfig
