"""The layer rules of the house (``shared/design.md``, "The house"), read from the source with
``ast``: no import circles among ``rsd`` modules; ``rsd.scene`` stays free of torch and
highway-env; the simulator knows no models, checkpoints, training or pipeline; teachers import
no model code; models, losses and metrics read no files; command modules are not libraries;
nobody imports another module's ``_private`` names; files and functions stay short.

Every import counts, at module level or inside a function (a hidden import is still an edge).
Each checker is a pure function of the parsed tree, exercised on a small broken house below so
that the test is seen to fail when a rule is broken.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "rsd"

MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 80
LONG_FUNCTIONS_ALLOWED: dict[str, str] = {}
"""``module:function`` -> why it reads better long (each also named in the change's note)."""

SIM_MUST_NOT_IMPORT = (
    "torch",
    "rsd.models",
    "rsd.losses",
    "rsd.checkpoint",
    "rsd.tasks",
    "rsd.policy",
    "rsd.pipeline",
    "rsd.commands",
    "rsd.report",
    "rsd.train",
)
TEACHER_MUST_NOT_IMPORT = (
    "rsd.models",
    "rsd.losses",
    "rsd.tasks",
    "rsd.policy",
    "rsd.pipeline",
    "rsd.commands",
)
SCENE_MUST_NOT_REACH = ("torch", "highway_env", "gymnasium")
PURE_PACKAGES = ("rsd.models", "rsd.losses", "rsd.metrics")
FILE_READING_IMPORTS = ("sqlite3", "pickle", "safetensors", "rsd.data.store", "rsd.checkpoint")
FILE_READING_CALLS = frozenset(
    {"open", "load", "read_text", "read_bytes", "safe_open", "load_file"}
)
"""Call names that read a file: ``open(...)``, ``np.load``/``torch.load``/``json.load``,
``Path.read_text``... (``json.loads`` of a string in memory is not a file)."""


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    imports: list[tuple[str, str | None, int]] = field(default_factory=list)
    """(imported module, imported name or None, line)."""


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, mod: Module) -> str:
    if not node.level:
        return node.module or ""
    base = mod.name.split(".")
    is_pkg = mod.path.name == "__init__.py"
    base = base[: len(base) - node.level + (1 if is_pkg else 0)]
    return ".".join(base + ([node.module] if node.module else []))


def parse_house(sources: Mapping[str, tuple[Path, str]]) -> dict[str, Module]:
    """``sources``: module name -> (path, text). Returns the modules with their imports."""
    house: dict[str, Module] = {}
    for name, (path, text) in sources.items():
        mod = Module(name, path, ast.parse(text, filename=str(path)))
        for node in ast.walk(mod.tree):
            if isinstance(node, ast.Import):
                mod.imports += [(a.name, None, node.lineno) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                target = _resolve(node, mod)
                mod.imports += [(target, a.name, node.lineno) for a in node.names]
        house[name] = mod
    return house


def load_house(root: Path = ROOT) -> dict[str, Module]:
    files = sorted(root.rglob("*.py"))
    return parse_house({module_name(p, root): (p, p.read_text()) for p in files})


def edges(house: Mapping[str, Module]) -> dict[str, set[str]]:
    """Module -> the house modules it imports (``from pkg import sub`` names the submodule)."""
    out: dict[str, set[str]] = {name: set() for name in house}
    for mod in house.values():
        for target, name, _ in mod.imports:
            if name and f"{target}.{name}" in house:
                target = f"{target}.{name}"
            if target in house and target != mod.name:
                out[mod.name].add(target)
    return out


def import_cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _within(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def forbidden_imports(
    house: Mapping[str, Module], package: str, banned: Iterable[str]
) -> list[str]:
    """``module:line -> target`` for every import in ``package`` of a ``banned`` prefix."""
    banned = tuple(banned)
    found = []
    for mod in house.values():
        if not _within(mod.name, [package]):
            continue
        for target, name, line in mod.imports:
            full = f"{target}.{name}" if name else target
            if _within(target, banned) or _within(full, banned):
                found.append(f"{mod.name}:{line} -> {full}")
    return found


def reachable_externals(house: Mapping[str, Module], start: str) -> set[str]:
    """Top-level external packages imported by ``start`` or any house module it reaches."""
    graph = edges(house)
    seen, todo, ext = {start}, [start], set()
    while todo:
        mod = house[todo.pop()]
        for target, _, _ in mod.imports:
            if not _within(target, ["rsd"]):
                ext.add(target.split(".")[0])
        for nxt in graph[mod.name] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return ext


def file_reads(mod: Module) -> list[str]:
    """``module:line what`` for each file-reading call or import in ``mod``."""
    found = []
    for target, name, line in mod.imports:
        full = f"{target}.{name}" if name else target
        if _within(target, FILE_READING_IMPORTS) or _within(full, FILE_READING_IMPORTS):
            found.append(f"{mod.name}:{line} imports {full}")
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.Call):
            f = node.func
            called = f.id if isinstance(f, ast.Name) else getattr(f, "attr", None)
            if called in FILE_READING_CALLS:
                found.append(f"{mod.name}:{node.lineno} calls {called}()")
    return found


def command_modules(house: Mapping[str, Module]) -> set[str]:
    """Modules that define a top-level ``add_arguments`` and ``run``: CLI commands."""
    out = set()
    for mod in house.values():
        top = {n.name for n in mod.tree.body if isinstance(n, ast.FunctionDef)}
        if {"add_arguments", "run"} <= top:
            out.add(mod.name)
    return out


def command_imports(house: Mapping[str, Module], front: str = "rsd.cli") -> list[str]:
    """Imports of a command module by any module but the CLI front."""
    commands = command_modules(house)
    graph = edges(house)
    return [f"{m} -> {t}" for m, ts in graph.items() if m != front for t in ts & commands]


def private_imports(house: Mapping[str, Module]) -> list[str]:
    """``from M import _x`` where the importer lies outside ``M`` (a private name of another
    module); a package's own modules may share its private submodules and names."""
    found = []
    for mod in house.values():
        for target, name, line in mod.imports:
            private = (name or "").startswith("_") and not (name or "").startswith("__")
            if private and not _within(mod.name, [target]):
                found.append(f"{mod.name}:{line} -> {target}.{name}")
    return found


def long_functions(mod: Module, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``module:function (n lines)`` for each function or method longer than ``limit``,
    decorators and docstring included."""
    found = []
    for node in ast.walk(mod.tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            n = node.end_lineno - node.lineno + 1
            if n > limit:
                found.append(f"{mod.name}:{node.name} ({n} lines)")
    return found


# ---------------------------------------------------------------- the rules on the real house


@pytest.fixture(scope="module")
def house() -> dict[str, Module]:
    return load_house()


def test_no_import_circles(house):
    assert import_cycles(edges(house)) == []


def test_scene_needs_no_torch_nor_highway_env(house):
    assert reachable_externals(house, "rsd.scene") & set(SCENE_MUST_NOT_REACH) == set()


def test_sim_knows_no_models_training_or_pipeline(house):
    assert forbidden_imports(house, "rsd.sim", SIM_MUST_NOT_IMPORT) == []


def test_teachers_import_no_model_code(house):
    assert forbidden_imports(house, "rsd.teacher", TEACHER_MUST_NOT_IMPORT) == []


def test_models_losses_metrics_read_no_files(house):
    pure = [m for m in house.values() if _within(m.name, PURE_PACKAGES)]
    assert pure, "no models/losses/metrics modules found"
    assert [r for m in pure for r in file_reads(m)] == []


def test_command_modules_are_not_libraries(house):
    assert command_modules(house), "no command modules found"
    assert command_imports(house) == []


def test_no_private_names_across_modules(house):
    assert private_imports(house) == []


def test_files_are_short(house):
    lines = {m.name: len(m.path.read_text().splitlines()) for m in house.values()}
    assert {name: n for name, n in lines.items() if n > MAX_FILE_LINES} == {}


def test_functions_are_short(house):
    found = [f for m in house.values() for f in long_functions(m)]
    assert [f for f in found if f.split(" (")[0] not in LONG_FUNCTIONS_ALLOWED] == []


# ---------------------------------------------------------------- the checkers catch breakage

BROKEN = {
    "rsd.scene": "import numpy\nfrom rsd.geometry import box\n",
    "rsd.geometry": "def box():\n    import torch\n",
    "rsd.sim.loop": "def f():\n    from rsd.policy import ModelPlanner\n",
    "rsd.policy": "from rsd.sim.loop import f\n",
    "rsd.teacher.x": "from rsd.models.head import Head\n",
    "rsd.models.head": "import json\nHead = json.load(open('w.json'))\n",
    "rsd.metrics.stats": "from rsd.config import _deep_merge\n",
    "rsd.config": "def _deep_merge(): pass\n",
    "rsd.commands.train": "def add_arguments(p): pass\ndef run(a): pass\n",
    "rsd.pipeline.x": "from rsd.commands import train\n",
    "rsd.commands": "",
    "rsd.cli": "import rsd.commands.train\n",
}


@pytest.fixture(scope="module")
def broken() -> dict[str, Module]:
    return parse_house({k: (Path(k.replace(".", "/") + ".py"), v) for k, v in BROKEN.items()})


def test_checkers_see_a_broken_house(broken):
    assert import_cycles(edges(broken)) == [["rsd.policy", "rsd.sim.loop"]]
    assert "torch" in reachable_externals(broken, "rsd.scene")
    assert forbidden_imports(broken, "rsd.sim", SIM_MUST_NOT_IMPORT) == [
        "rsd.sim.loop:2 -> rsd.policy.ModelPlanner"
    ]
    assert forbidden_imports(broken, "rsd.teacher", TEACHER_MUST_NOT_IMPORT) == [
        "rsd.teacher.x:1 -> rsd.models.head.Head"
    ]
    assert file_reads(broken["rsd.models.head"]) == [
        "rsd.models.head:2 calls load()",
        "rsd.models.head:2 calls open()",
    ]
    assert command_imports(broken) == ["rsd.pipeline.x -> rsd.commands.train"]
    assert private_imports(broken) == ["rsd.metrics.stats:1 -> rsd.config._deep_merge"]


def test_long_function_checker_counts_lines():
    body = "def f():\n" + "    x = 1\n" * 80
    mod = parse_house({"m": (Path("m.py"), body)})["m"]
    assert long_functions(mod) == ["m:f (81 lines)"]
    assert long_functions(mod, limit=81) == []


def test_relative_imports_resolve():
    house = parse_house(
        {
            "rsd.a": (Path("rsd/a/__init__.py"), "from .b import x\n"),
            "rsd.a.b": (Path("rsd/a/b.py"), "from . import c\nfrom ..d import y\n"),
            "rsd.a.c": (Path("rsd/a/c.py"), ""),
            "rsd.d": (Path("rsd/d.py"), ""),
        }
    )
    assert edges(house) == {
        "rsd.a": {"rsd.a.b"},
        "rsd.a.b": {"rsd.a.c", "rsd.d"},
        "rsd.a.c": set(),
        "rsd.d": set(),
    }


def report(house: Mapping[str, Module]) -> dict[str, list[str]]:
    """Every violation by rule (``python tests/test_architecture.py`` prints them)."""
    lines = {m.name: len(m.path.read_text().splitlines()) for m in house.values()}
    pure = [m for m in house.values() if _within(m.name, PURE_PACKAGES)]
    return {
        "circles": [" <-> ".join(c) for c in import_cycles(edges(house))],
        "scene": sorted(reachable_externals(house, "rsd.scene") & set(SCENE_MUST_NOT_REACH)),
        "sim": forbidden_imports(house, "rsd.sim", SIM_MUST_NOT_IMPORT),
        "teacher": forbidden_imports(house, "rsd.teacher", TEACHER_MUST_NOT_IMPORT),
        "file reads": [r for m in pure for r in file_reads(m)],
        "commands imported": command_imports(house),
        "private": private_imports(house),
        "long files": [f"{k} ({n})" for k, n in lines.items() if n > MAX_FILE_LINES],
        "long functions": [
            f
            for m in house.values()
            for f in long_functions(m)
            if f.split(" (")[0] not in LONG_FUNCTIONS_ALLOWED
        ],
    }


if __name__ == "__main__":
    for rule, found in report(load_house()).items():
        print(f"{rule}: {len(found)}")
        for f in found:
            print(f"  {f}")
