"""The import graph of ``emulator``: no circles, and every name imported from its defining module.

Every import counts, wherever it is written: at module level, inside a function, under
``if TYPE_CHECKING:``. A package ``__init__`` that only carries a docstring adds no edge.

The curated public namespaces may re-export what their package defines elsewhere:
``emulator.engine`` (the engine's API: ``Sim``, the primitives, the recorder, the strategies),
``emulator.workload`` (what a scenario's workload is built from) and ``emulator.scenario`` (the
scenario API with its parameters). Everywhere else a module exports only what it defines, and an
import names the module that defines the name.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "emulator"
PUBLIC_NAMESPACES = {"emulator.engine", "emulator.workload", "emulator.scenario"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}
TREES = {m: ast.parse(p.read_text(encoding="utf-8"), str(p)) for m, p in MODULES.items()}


def imported_modules(mod: str) -> set[str]:
    """The ``emulator`` modules ``mod`` imports anywhere in its text (longest known prefix)."""
    is_pkg = MODULES[mod].name == "__init__.py"
    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
    out: set[str] = set()
    for node in ast.walk(TREES[mod]):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = node.module or ""
            if node.level:
                stem = ".".join(base[: len(base) - node.level + 1] + ([stem] if stem else []))
            names = [stem] + [f"{stem}.{a.name}" for a in node.names]
        for name in names:
            while name and name not in MODULES:
                name = name.rpartition(".")[0]
            if name and name != mod:
                out.add(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> modules it imports, with package ``__init__`` files as nodes too."""
    return {m: imported_modules(m) for m in MODULES}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected sets of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, edges = work[-1]
            w = next(edges, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_the_circle_finder_finds_a_circle_through_a_function_level_import() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle() -> None:
    """Counting TYPE_CHECKING and function-level imports, and the package ``__init__`` files
    (a re-exporting facade imported by a module of its own package closes a circle too), no
    module of ``emulator`` is in an import circle."""
    graph = import_graph()
    found = circles(graph)
    lines = [f"{m} -> {', '.join(sorted(graph[m] & set(c)))}" for c in found for m in c]
    assert not found, f"{len(found)} import circle(s):\n" + "\n".join(lines)


def top_level_names(mod: str) -> tuple[set[str], dict[str, str]]:
    """(names ``mod`` defines, names it imports at run time -> the module they come from)."""
    defined: set[str] = set()
    imported: dict[str, str] = {}

    def walk(body: list[ast.stmt], type_checking: bool) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                defined.update(
                    n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)
                )
            elif isinstance(node, ast.ImportFrom) and node.module and not type_checking:
                for a in node.names:
                    imported[a.asname or a.name] = node.module
            elif isinstance(node, ast.Import):
                defined.update(a.asname or a.name.partition(".")[0] for a in node.names)
            elif isinstance(node, ast.If):
                tc = type_checking or "TYPE_CHECKING" in ast.unparse(node.test)
                walk(node.body, tc)
                walk(node.orelse, tc)
            elif isinstance(node, ast.Try):
                walk(node.body, type_checking)
                for handler in node.handlers:
                    walk(handler.body, type_checking)

    walk(TREES[mod].body, False)
    return defined, imported


def test_no_module_exports_a_name_it_does_not_define() -> None:
    wrong = []
    for mod, tree in TREES.items():
        if mod in PUBLIC_NAMESPACES:
            continue
        defined, _ = top_level_names(mod)
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
            ):
                names = ast.literal_eval(node.value)
                wrong += [f"{mod}.__all__: {n}" for n in names if n not in defined]
    assert not wrong, "\n".join(wrong)


def test_every_import_names_the_module_that_defines_the_name() -> None:
    files = [*PACKAGE.rglob("*.py"), *(ROOT / "tests").rglob("*.py")]
    files += [*(ROOT / "scenarios").glob("*.py"), *(ROOT / "benchmarks").glob("*.py")]
    wrong = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom) or node.level or node.module not in MODULES:
                continue
            if node.module in PUBLIC_NAMESPACES:
                continue
            defined, imported = top_level_names(node.module)
            for a in node.names:
                if f"{node.module}.{a.name}" in MODULES or a.name in defined:
                    continue
                home = imported.get(a.name, "nowhere")
                wrong.append(
                    f"{path.relative_to(ROOT)}:{node.lineno}: {a.name} from {node.module}"
                    f" (defined in {home})"
                )
    assert not wrong, "\n".join(wrong)
