"""Who may import whom (docs/architecture.md), checked on the source text.

Every module of the package is parsed with ``ast`` (nothing is imported) and every import in it,
function-local ones included, becomes an edge. A module belongs to the layer group whose prefix
matches its name longest. An import may go to the module's own group or to any group of a lower
layer; groups that share a layer (learning | skills, deploy | tools) do not import each other.
No module import circle is allowed, inside a group either.
"""
from __future__ import annotations

import ast
import shutil
from pathlib import Path

PACKAGE = "isaacgymenvs_hrl"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Lowest layer first; each layer maps its groups to the module prefixes (inside the package) they hold.
# "" is the package itself (its __init__: make()).
LAYERS = [
    {"base": ["errors", "paths", "utils"]},                   # no project imports but these
    {"sim": ["sim"], "controllers": ["controllers"]},
    {"formats": ["tasks.base.spec", "datasets"]},             # observation layout, dataset files, windows, rollouts
    {"tasks": ["tasks"]},
    {"experts": ["experts"]},                                 # scripted experts read a task's privileged state
    {"hrl": ["hrl"]},                                         # frozen-skill artifact, LatentSkillEnv, env factory
    {"learning": ["learning"], "skills": ["skills"], "importers": ["datasets.importers"]},
    {"export": ["export"]},                                   # reads runs through learning
    {"deploy": ["deploy"], "tools": ["tools"]},
    {"study": ["study"]},
    {"api": [""]},
    {"cli": ["cli", "train", "collect", "skills_cli"]},       # train/collect: `python -m` aliases of cli/
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = ROOT) -> dict[str, Path]:
    return {module_name(p, root): p for p in sorted(root.rglob("*.py"))}


def imports(root: Path = ROOT) -> list[tuple[str, str, int]]:
    """(importer, imported module, line) for every import of a package module by a package module."""
    known = modules(root)
    edges = []
    for name, path in known.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                # `from pkg import mod` imports the module pkg.mod; `from mod import name` imports mod
                targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module for a in node.names]
            for target in targets:
                while target and target not in known and "." in target:    # `import a.b.c` of an attribute
                    target = target.rsplit(".", 1)[0]
                if target in known and target != name and (name, target, node.lineno) not in edges:
                    edges.append((name, target, node.lineno))
    return edges


def place(module: str) -> tuple[int, str]:
    """(layer index, group) of a package module: the group with the longest matching prefix."""
    rel = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    best = None
    for level, groups in enumerate(LAYERS):
        for group, prefixes in groups.items():
            for prefix in prefixes:
                if rel == prefix or (prefix and rel.startswith(prefix + ".")) or (prefix == "" and rel == ""):
                    if best is None or len(prefix) > best[0]:
                        best = (len(prefix), level, group)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add its folder to LAYERS in tests/test_layers.py "
                             "and to docs/architecture.md")
    return best[1], best[2]


def upward_imports(root: Path = ROOT) -> list[str]:
    bad = []
    for src, dst, line in imports(root):
        (ls, gs), (ld, gd) = place(src), place(dst)
        if gs != gd and ld >= ls:
            what = "beside" if ld == ls else "above"
            bad.append(f"{src}:{line} imports {dst} (group {gd}, {what} group {gs})")
    return bad


def circles(root: Path = ROOT) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    graph: dict[str, set] = {m: set() for m in modules(root)}
    for src, dst, _ in imports(root):
        graph[src].add(dst)
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


# ---- the package as it is ----------------------------------------------------------------------------
def test_every_module_has_a_layer():
    for name in modules():
        place(name)


def test_no_upward_or_sideways_import():
    bad = upward_imports()
    assert not bad, "imports against the layers of docs/architecture.md:\n" + "\n".join(bad)


def test_no_import_circle():
    found = circles()
    assert not found, "import circles:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_library_code_has_no_main():
    """Commands live in cli/; a library module keeps no main() (the `python -m` aliases import it)."""
    cli_level = len(LAYERS) - 1
    with_main = [name for name, path in modules().items() if place(name)[0] != cli_level
                 and any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in ast.parse(path.read_text()).body)]
    assert not with_main, f"main() outside cli/: {with_main}"


# ---- the check itself can fail ---------------------------------------------------------------------------
def _copy(tmp_path) -> Path:
    copy = tmp_path / PACKAGE
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns("__pycache__", "pretrained", "*.pt", "*.pth"))
    return copy


def test_a_planted_upward_import_is_caught(tmp_path):
    copy = _copy(tmp_path)
    llc = copy / "hrl" / "llc.py"
    llc.write_text(llc.read_text() + "\n\ndef _planted():\n    from ..skills import common  # noqa\n")
    bad = upward_imports(copy)
    assert any(b.startswith(f"{PACKAGE}.hrl.llc:") and f"{PACKAGE}.skills.common" in b for b in bad), bad


def test_a_planted_circle_is_caught(tmp_path):
    copy = _copy(tmp_path)
    llc = copy / "hrl" / "llc.py"
    llc.write_text(llc.read_text() + "\n\ndef _planted():\n    from . import env_factory  # noqa\n")
    assert not upward_imports(copy)                      # inside hrl: only the circle check sees it
    assert any(f"{PACKAGE}.hrl.llc" in c and f"{PACKAGE}.hrl.env_factory" in c for c in circles(copy))
