"""The package layout the README describes: imports point one way (no cycles, between modules or
between the package's parts) and no module imports another's private names.

Every import counts, also those inside functions (the lazy ones), except imports under
`if TYPE_CHECKING:` (annotations only, never executed)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "modeltool"

#: the layers, lowest first; a part may import its own layer and those below it, never above
LAYERS = [
    {"errors", "deps", "limits", "sizes", "formats", "options", "targets", "ir", "atomic", "policy", "wire"},
    {"keras", "tfgraph", "quantization", "feeds", "metrics", "evidence"},
    {"loaders", "runners"},
    {"sources"},
    {"exporters"},
    {"verify", "convert", "ops", "localize", "report", "batch"},
    {"cli", "__main__", "__init__"},
]


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    while name and name not in MODULES:
        name = name.rsplit(".", 1)[0] if "." in name else ""
    return name or None


def _imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module imported, names taken from it, line) for every executed import of modeltool."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(sub) for sub in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("modeltool"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                out.append((full if full in MODULES else node.module, [alias.name], node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names if a.name.startswith("modeltool")]
    return out


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, _, _ in _imports(path):
            resolved = _resolve(target)
            if resolved and resolved != module:
                edges[module].add(resolved)
    return edges


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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

    for v in list(edges):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_edges()) == []


def test_no_import_cycles_between_parts_of_the_package() -> None:
    parts: dict[str, set[str]] = {}
    for a, targets in _edges().items():
        for b in targets:
            if _part(a) != _part(b):
                parts.setdefault(_part(a), set()).add(_part(b))
    assert _cycles(parts) == []


def test_imports_point_down_the_layers() -> None:
    layer_of = {part: i for i, layer in enumerate(LAYERS) for part in layer}
    unknown = sorted({_part(m) for m in MODULES} - set(layer_of))
    assert not unknown, f"parts missing from LAYERS: {unknown}"
    upward = []
    for module, targets in _edges().items():
        for target in targets:
            if layer_of[_part(target)] > layer_of[_part(module)]:
                upward.append(f"{module} -> {target}")
    assert upward == []


def test_no_private_names_imported_across_modules() -> None:
    leaks = [f"{module}:{line} imports {names[0]} from {target}"
             for module, path in MODULES.items() for target, names, line in _imports(path)
             if names and _private(names[0]) and _resolve(target) != module]  # fmt: skip
    assert leaks == []


def _private(name: str) -> bool:
    return name.startswith("_") and not name.endswith("__")  # `__version__` is public


@pytest.mark.parametrize("rule", ["cycles", "layers"])
def test_the_checks_can_fail(rule: str) -> None:
    """The checks above detect what they look for (a made-up graph)."""
    if rule == "cycles":
        assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c"]]
    else:
        layer_of = {part: i for i, layer in enumerate(LAYERS) for part in layer}
        assert layer_of["ir"] < layer_of["ops"]  # ir -> ops (the old summary import) would be upward
