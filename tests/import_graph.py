"""The package's import graph and the layout rules it must keep.

Run ``python tests/import_graph.py`` for a report; ``tests/test_layout.py`` asserts it is clean.

Rules (README "How it is built"):
- layers, top to bottom: ``cli``/``ui`` > ``recovery`` > ``queries`` > ``store`` > ``tracking``
  > ``delta`` > the shared vocabulary (``records``, ``tags``, ``events``, ``errors``,
  ``settings``, ``openlineage``, ``progress``); a module imports only from its own layer or below;
- ``lineage_plugin/__init__.py`` and ``api.py`` are the public facade: nothing inside imports them;
- no import cycles between modules (every import counts: module level, in a function, or under
  ``TYPE_CHECKING``);
- no module imports another module's private (``_name``) definitions, the benchmarks included;
- no module over ``MAX_LINES`` lines.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "lineage_plugin"
MAX_LINES = 450

# Sub-package (or top-level module) -> layer; higher numbers sit higher.
LAYERS: dict[str, int] = {
    "cli": 7,
    "ui": 7,
    "recovery": 6,
    "queries": 5,
    "store": 4,
    "tracking": 3,
    "delta": 2,
    "records": 1,
    "tags": 1,
    "events": 1,
    "deleted": 1,
    "errors": 1,
    "settings": 1,
    "openlineage": 1,
    "progress": 1,
}
FACADE = {PACKAGE, f"{PACKAGE}.api"}


@dataclass
class Module:
    name: str
    path: Path
    lines: int
    imports: list[tuple[str, int]] = field(default_factory=list)  # (module, line)
    private_uses: list[tuple[str, str, int]] = field(default_factory=list)  # (module, name, line)


def _source_files() -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    ui = ROOT / "ui_extension"
    for path in sorted(ui.rglob("*.py")) if ui.is_dir() else []:
        parts = [PACKAGE, "ui", *path.relative_to(ui).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _resolve_from(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _read(name: str, path: Path, known: set[str]) -> Module:
    text = path.read_text()
    tree = ast.parse(text)
    mod = Module(name, path, len(text.splitlines()))
    aliases: dict[str, str] = {}  # local name -> a project module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                mod.imports.append((alias.name, node.lineno))
                if alias.asname:
                    aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            source = _resolve_from(name, path.name == "__init__.py", node)
            for alias in node.names:
                target = f"{source}.{alias.name}"
                if target in known:  # ``from pkg import submodule``
                    mod.imports.append((target, node.lineno))
                    aliases[alias.asname or alias.name] = target
                    continue
                mod.imports.append((source, node.lineno))
                if _is_private(alias.name):
                    mod.private_uses.append((source, alias.name, node.lineno))
    for node in ast.walk(tree):  # ``module._private`` through an imported module
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and _is_private(node.attr)
        ):
            mod.private_uses.append((aliases[node.value.id], node.attr, node.lineno))
    return mod


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def layer_of(module: str) -> int | None:
    """The layer of a project module, ``None`` for the facade and outside modules."""
    parts = module.split(".")
    if parts[0] != PACKAGE or module in FACADE or len(parts) < 2:
        return None
    return LAYERS.get(parts[1])


@dataclass
class Report:
    modules: dict[str, Module]
    cycles: list[list[str]]
    private: list[str]
    climbs: list[str]
    facade_imports: list[str]
    unplaced: list[str]
    oversized: list[str]

    def problems(self) -> int:
        return sum(
            map(
                len,
                (
                    self.cycles,
                    self.private,
                    self.climbs,
                    self.facade_imports,
                    self.unplaced,
                    self.oversized,
                ),
            )
        )


def _owner(target: str, known: set[str]) -> str | None:
    """The project module an imported name lives in (``a.b.c`` -> ``a.b`` when ``c`` is a name)."""
    while target:
        if target in known:
            return target
        target = target.rpartition(".")[0]
    return None


def analyse() -> Report:
    files = _source_files()
    known = set(files)
    modules = {name: _read(name, path, known) for name, path in files.items()}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    private, climbs, facade_imports = [], [], []
    for mod in modules.values():
        rel = mod.path.relative_to(ROOT)
        for target, line in mod.imports:
            owner = _owner(target, known)
            if owner is None or owner == mod.name:
                continue
            graph[mod.name].add(owner)
            if owner in FACADE and mod.name not in FACADE:
                facade_imports.append(f"{rel}:{line} imports the facade {owner}")
            low, high = layer_of(owner), layer_of(mod.name)
            if low is not None and high is not None and low > high:
                climbs.append(f"{rel}:{line} ({high}) imports {owner} ({low})")
        for target, name, line in mod.private_uses:
            owner = _owner(target, known)
            if owner is not None and owner != mod.name:
                private.append(f"{rel}:{line} uses {owner}.{name}")
    private += _benchmark_private_uses(known)
    unplaced = [
        str(m.path.relative_to(ROOT))
        for m in modules.values()
        if m.name not in FACADE and layer_of(m.name) is None
    ]
    oversized = [
        f"{m.path.relative_to(ROOT)}: {m.lines} lines"
        for m in modules.values()
        if m.lines > MAX_LINES
    ]
    return Report(
        modules, _cycles(graph), private, climbs, facade_imports, unplaced, sorted(oversized)
    )


def _benchmark_private_uses(known: set[str]) -> list[str]:
    bench = ROOT / "benchmarks"
    local = {p.stem for p in bench.glob("*.py")}
    found = []
    for path in sorted(bench.glob("*.py")):
        mod = _read(f"benchmarks.{path.stem}", path, known | {f"benchmarks.{s}" for s in local})
        for target, name, line in mod.private_uses:
            if target.split(".")[0] in local | {PACKAGE}:  # the project's own modules
                found.append(f"{path.relative_to(ROOT)}:{line} uses {target}.{name}")
        for target, line in mod.imports:
            if target.split(".")[0] in local and _is_private(target.split(".")[0]):
                found.append(f"{path.relative_to(ROOT)}:{line} imports private module {target}")
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(1000, 10 * len(graph)))
    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def main() -> int:
    report = analyse()
    sections = {
        "cycles": [" -> ".join(c) for c in report.cycles],
        "private imports": report.private,
        "climbs": report.climbs,
        "imports of the facade": report.facade_imports,
        "modules outside every layer": report.unplaced,
        f"modules over {MAX_LINES} lines": report.oversized,
    }
    for title, items in sections.items():
        print(f"{title}: {len(items)}")
        for item in items:
            print(f"  {item}")
    sizes = sorted(report.modules.values(), key=lambda m: -m.lines)[:5]
    print("largest modules: " + ", ".join(f"{m.path.relative_to(ROOT)} {m.lines}" for m in sizes))
    return 1 if report.problems() else 0


if __name__ == "__main__":
    raise SystemExit(main())
