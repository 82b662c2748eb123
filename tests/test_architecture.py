"""The layering of the package, checked from the source (ast), so a wrong-way import fails CI.

Layers (README, "Architecture"): core (models, data, metrics, scoring, compare, artifacts,
hardware, errors, vocabulary, backends) imports no stage; ``train`` imports only core; ``export``
imports only core; ``runtime`` imports core and export; ``video`` (files with a video stream) core, export
and runtime; ``bench`` imports core, export and runtime; ``serve`` (HTTP service) core, export and runtime;
``cluster`` (Ray) those and video and serve;
``pipeline`` everything but the CLI; the API (``sr_deploy/__init__.py``) everything but the CLI;
nothing imports the CLI. Every import counts, also inside functions and ``if TYPE_CHECKING``
blocks, and no two modules may import each other, directly or through others.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sr_deploy"
CORE = {"_version", "vocabulary", "errors", "artifacts", "hardware", "metrics", "compare", "scoring", "models",
        "data", "backends"}
STAGES = ("train", "export", "runtime", "video", "bench", "serve", "cluster", "pipeline", "cli")
ALLOWED = {
    "core": {"core"},
    "train": {"core", "train"},
    "export": {"core", "export"},
    "runtime": {"core", "export", "runtime"},
    "video": {"core", "export", "runtime", "video"},
    "bench": {"core", "export", "runtime", "bench"},
    "serve": {"core", "export", "runtime", "serve"},
    "cluster": {"core", "export", "runtime", "video", "serve", "cluster"},
    "pipeline": {"core", "train", "export", "runtime", "bench", "pipeline"},
    "api": {"core", "train", "export", "runtime", "video", "bench", "serve", "cluster", "pipeline"},
    "cli": {"core", "train", "export", "runtime", "video", "bench", "serve", "cluster", "pipeline", "api", "cli"},
}


def module_name(path: Path) -> str:
    parts = ["sr_deploy", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> str:
    parts = module.split(".")
    if parts == ["sr_deploy"]:
        return "api"
    top = parts[1]
    if top in CORE:
        return "core"
    if top in STAGES:
        return top
    raise AssertionError(f"{module} is in no layer: add it to CORE or STAGES (and to the README's table)")


def imported_modules(module: str, source: str, known: Iterable[str]) -> set[str]:
    """Every ``sr_deploy`` module that ``source`` (the text of ``module``) imports, anywhere in it."""
    known = set(known)
    is_package = module in known and (PACKAGE / Path(*module.split(".")[1:], "__init__.py")).is_file()
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return {m for m in found if m == "sr_deploy" or m.startswith("sr_deploy.")}


def violations(module: str, source: str, known: Iterable[str]) -> list[str]:
    """``module imports X (layer -> layer)`` for every import against the layering."""
    mine = layer_of(module)
    return [f"{module} imports {target} ({mine} -> {layer_of(target)})"
            for target in sorted(imported_modules(module, source, known))
            if target != module and layer_of(target) not in ALLOWED[mine]]


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {m: imported_modules(m, p.read_text(), modules) - {m} for m, p in modules.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_every_module_imports_only_its_own_layer_and_those_below() -> None:
    modules = package_modules()
    problems = [v for m, p in modules.items() for v in violations(m, p.read_text(), modules)]
    assert problems == []


def test_no_import_cycles_between_modules() -> None:
    assert cycles(import_graph()) == []


def test_nothing_imports_the_cli() -> None:
    importers = [m for m, targets in import_graph().items()
                 if layer_of(m) != "cli" and any(layer_of(t) == "cli" for t in targets)]
    assert importers == []


@pytest.mark.parametrize(("module", "planted", "expected"), [
    # the wrong-way imports this redesign removed: each one fails the check
    ("sr_deploy.train.loop", "from sr_deploy.bench.accuracy import score", "train -> bench"),
    ("sr_deploy.train.loop", "def f():\n    from sr_deploy.runtime.select import load\n", "train -> runtime"),
    ("sr_deploy.backends.onnxrt", "from sr_deploy.export.profiles import Profile", "core -> export"),
    ("sr_deploy.export.onnx", "from sr_deploy.runtime import load", "export -> runtime"),
    ("sr_deploy.runtime.select", "from sr_deploy.bench.variants import plan_variants", "runtime -> bench"),
    ("sr_deploy.pipeline", "import sr_deploy.cli", "pipeline -> cli"),
    ("sr_deploy.models.weights", "from sr_deploy import load", "core -> api"),
    ("sr_deploy.scoring", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from sr_deploy.bench import run\n",
     "core -> bench"),
])
def test_a_planted_wrong_way_import_fails(module: str, planted: str, expected: str) -> None:
    modules = package_modules()
    source = modules[module].read_text() + "\n" + planted
    found = violations(module, source, [*modules, "sr_deploy.bench.accuracy", "sr_deploy.export.profiles"])
    assert any(expected in v for v in found), found


def test_a_planted_cycle_is_found() -> None:
    graph = import_graph()
    assert cycles(graph) == []
    graph["sr_deploy.export.gate"] = graph["sr_deploy.export.gate"] | {"sr_deploy.export.onnx"}  # onnx -> gate too
    assert ["sr_deploy.export.gate", "sr_deploy.export.onnx"] in cycles(graph)


def test_relative_imports_resolve_to_package_modules() -> None:
    modules = package_modules()
    assert imported_modules("sr_deploy.export.int8", "from .gate import require\nfrom . import qdq\n", modules) == {
        "sr_deploy.export.gate", "sr_deploy.export.qdq"}
    assert imported_modules("sr_deploy.backends", "from .base import Upscaler\n", modules) == {
        "sr_deploy.backends.base"}
