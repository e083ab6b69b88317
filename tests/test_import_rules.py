"""Import rules of the package, read from the source (AST only: nothing here imports `hf_search_wandb`).

Every import of one of our modules counts, including those inside functions (a function-level import hides
a cycle, it does not break it); only `if TYPE_CHECKING:` blocks are left out, as they never run.

* no cycle between modules;
* no module imports another module's private (`_`-prefixed, non-dunder) name, neither by
  `from a.b import _x` nor as `b._x` through an imported module;
* layers import downwards (docs/architecture.md): `core` never imports `tracking`, `trainer`, `sweeps`,
  `report` or `cli`; `tracking` never imports `trainer`, `sweeps`, `report` or `cli`.

Edges: `import a.b` and `from a.b import x` point at `a.b`; `from a import b` points at `a.b` when `b` is a
submodule; `from hf_search_wandb import name` points at the module `_EXPORTS` names for it (the package
resolves it lazily, by importing that module). A module does not point at its parent packages, so a
package's `__init__` importing its children is no cycle with them.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "hf_search_wandb"


def _repo_root() -> Path:
    for folder in Path(__file__).resolve().parents:
        if (folder / PACKAGE / "__init__.py").is_file():
            return folder
    raise RuntimeError(f"no {PACKAGE}/ above {__file__}")


ROOT = _repo_root()

#: for each layer, the layers (and top-level modules) it must never import
FORBIDDEN = {
    f"{PACKAGE}.core": ("tracking", "trainer", "sweeps", "report", "cli"),
    f"{PACKAGE}.tracking": ("trainer", "sweeps", "report", "cli"),
}


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int

    def where(self, modules: dict[str, Path]) -> str:
        return f"{modules[self.source].relative_to(ROOT)}:{self.line}"


@dataclass
class ModuleImports:
    edges: list[Edge] = field(default_factory=list)
    #: (line, the private name, the module it belongs to)
    private: list[tuple[int, str, str]] = field(default_factory=list)


def discover() -> dict[str, Path]:
    """`{dotted module name: file}` of every module of the package (a package by its `__init__.py`)."""
    modules: dict[str, Path] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def lazy_exports(modules: dict[str, Path]) -> dict[str, str]:
    """The package's `_EXPORTS` table (public name -> defining module), read from its `__init__.py`."""
    tree = ast.parse(modules[PACKAGE].read_text(encoding="utf-8"))
    for node in tree.body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
        if isinstance(target, ast.Name) and target.id == "_EXPORTS" and node.value is not None:
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    return {}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node of `tree` outside the bodies of `if TYPE_CHECKING:` (their `else:` runs, so it counts)."""
    out: list[ast.AST] = []
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            stack.append(node.test)
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))
    return out


def _dotted(node: ast.expr) -> list[str] | None:
    """`a.b.c` as `["a", "b", "c"]`; None for anything but names and attributes."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    return parts[::-1]


def collect(name: str, source: str, modules: dict[str, Path], exports: dict[str, str]) -> ModuleImports:
    """The imports of our own modules in one module's `source`, and its uses of their private names."""
    found = ModuleImports()
    is_package = modules.get(name, Path()).name == "__init__.py"
    nodes = _runtime_nodes(ast.parse(source))
    bound: dict[str, str] = {}  # local name -> the module of ours it refers to

    def ours(module: str) -> bool:
        return module == PACKAGE or module.startswith(PACKAGE + ".")

    def owner(module: str) -> str:
        """The module itself, or its closest enclosing module we have a file for."""
        while module not in modules and "." in module:
            module = module.rsplit(".", 1)[0]
        return module

    for node in nodes:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if not ours(alias.name):
                    continue
                found.edges.append(Edge(name, owner(alias.name), node.lineno))
                if alias.asname:
                    bound[alias.asname] = alias.name
                else:
                    bound[alias.name.split(".")[0]] = alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                package = ".".join(base + ([node.module] if node.module else []))
            else:
                package = node.module or ""
            if not ours(package):
                continue
            for alias in node.names:
                submodule = f"{package}.{alias.name}"
                if submodule in modules:
                    target = submodule
                    bound[alias.asname or alias.name] = submodule
                elif package == PACKAGE and alias.name in exports:
                    target = exports[alias.name]
                else:
                    target = owner(package)
                found.edges.append(Edge(name, target, node.lineno))
                if _is_private(alias.name) and alias.name != "*":
                    found.private.append((node.lineno, alias.name, package))
    for node in nodes:
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            parts = _dotted(node.value)
            if not parts or parts[0] not in bound:
                continue
            module = ".".join([bound[parts[0]], *parts[1:]])
            if module in modules and module != name:
                found.private.append((node.lineno, node.attr, module))
    return found


def _graph() -> tuple[dict[str, Path], dict[str, ModuleImports]]:
    modules = discover()
    exports = lazy_exports(modules)
    return modules, {
        name: collect(name, path.read_text(encoding="utf-8"), modules, exports)
        for name, path in modules.items()
    }


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def _one_cycle(component: list[str], graph: dict[str, set[str]]) -> list[str]:
    """A shortest cycle through the component's first module (breadth-first inside the component)."""
    start, members = component[0], set(component)
    previous: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for nxt in sorted(graph[node] & members):
                if nxt == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(previous[path[-1]])
                    return [*path[::-1], start]
                if nxt not in previous:
                    previous[nxt] = node
                    following.append(nxt)
        frontier = following
    raise AssertionError(f"no cycle in {component}")


# ---------------------------------------------------------------- the rules


def test_the_module_import_graph_has_no_cycle() -> None:
    modules, imports = _graph()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    first: dict[tuple[str, str], Edge] = {}
    for name, found in imports.items():
        for edge in found.edges:
            if edge.target != name:
                graph[name].add(edge.target)
                first.setdefault((name, edge.target), edge)
    problems = []
    for component in _strongly_connected(graph):
        cycle = _one_cycle(component, graph)
        steps = [f"    {first[a, b].where(modules)}: {a} imports {b}" for a, b in itertools.pairwise(cycle)]
        problems.append(f"import cycle among {', '.join(component)}:\n" + "\n".join(steps))
    assert not problems, "\n".join(problems)


def test_no_module_imports_another_modules_private_names() -> None:
    modules, imports = _graph()
    problems = [
        f"{modules[name].relative_to(ROOT)}:{line}: uses {private!r}, a private name of {owner}"
        for name, found in imports.items()
        for line, private, owner in found.private
    ]
    assert not problems, "\n".join(problems)


def test_layers_import_downwards_only() -> None:
    modules, imports = _graph()
    problems = []
    for name, found in imports.items():
        for layer, banned in FORBIDDEN.items():
            if name != layer and not name.startswith(layer + "."):
                continue
            for edge in found.edges:
                hit = next(
                    (
                        b
                        for b in banned
                        if edge.target in (f"{PACKAGE}.{b}",) or edge.target.startswith(f"{PACKAGE}.{b}.")
                    ),
                    None,
                )
                if hit is not None:
                    problems.append(
                        f"{edge.where(modules)}: {name} ({layer.rsplit('.', 1)[1]}) imports {edge.target} ({hit})"
                    )
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- the reader itself


def test_the_reader_sees_function_level_imports_and_skips_type_checking_blocks() -> None:
    modules = {
        f"{PACKAGE}.a": Path("a.py"),
        f"{PACKAGE}.b": Path("b.py"),
        f"{PACKAGE}.c": Path("c.py"),
        f"{PACKAGE}.pkg": Path("pkg/__init__.py"),
        f"{PACKAGE}.pkg.d": Path("pkg/d.py"),
    }
    source = f"""
from typing import TYPE_CHECKING
import {PACKAGE}.pkg.d as d
if TYPE_CHECKING:
    from {PACKAGE}.c import C
else:
    from {PACKAGE} import pkg
def f():
    from {PACKAGE}.b import _helper, __version__
    return d._private, d.__name__
"""
    found = collect(f"{PACKAGE}.a", source, modules, {"Thing": f"{PACKAGE}.c"})
    assert sorted((e.target, e.line) for e in found.edges) == [
        (f"{PACKAGE}.b", 9),
        (f"{PACKAGE}.b", 9),
        (f"{PACKAGE}.pkg", 7),
        (f"{PACKAGE}.pkg.d", 3),
    ]
    assert sorted(found.private) == [(9, "_helper", f"{PACKAGE}.b"), (10, "_private", f"{PACKAGE}.pkg.d")]
    relative = collect(
        f"{PACKAGE}.pkg.d", "from . import d\nfrom .. import Thing\n", modules, {"Thing": f"{PACKAGE}.c"}
    )
    assert sorted(e.target for e in relative.edges) == [f"{PACKAGE}.c", f"{PACKAGE}.pkg.d"]
