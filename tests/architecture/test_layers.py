"""Every import in the package follows the layer table of docs/architecture.md: nothing
imports upward, and no module imports another module's private names."""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# (module prefix, layer), most specific first; the table in docs/architecture.md
LAYERS = [
    ("workbench.errors", 0), ("workbench.storage", 0), ("workbench.keys", 0), ("workbench.scores", 0),
    ("workbench.backend", 0), ("workbench.resources", 0), ("workbench.assembly", 0),
    ("data_adapters", 1),
    ("workbench.stimuli", 2), ("workbench.object_stimuli", 2), ("workbench.character_stimuli", 2), ("workbench.degradations", 2),
    ("workbench.models", 3),
    ("workbench.stats", 4),
    ("workbench.metrics", 5),
    ("workbench.simulators", 6),
    ("workbench.replications", 7),
    ("workbench.plots", 8),
    ("workbench.benchmarks", 9),
    ("workbench.report", 10),
    ("workbench.cli", 11),
    ("workbench", 0),  # the package itself: the contract facade and __version__
]
MAY_IMPORT = {0: {0}, 1: {0, 1}, 2: {0, 2}, 3: {0, 2, 3}, 4: {0, 4}, 5: {0, 4, 5}, 6: set(range(7)),
              7: set(range(8)), 8: {0, 8}, 9: set(range(10)), 10: set(range(11)), 11: set(range(12))}


def layer_of(module):
    for prefix, layer in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return layer
    return None  # a third-party module


def _module_name(path, root=REPO):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports(path, root=REPO):
    """``(line, imported module, imported names)`` of every import statement, relative ones
    resolved."""
    name = _module_name(path, root)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            names = [alias.name for alias in node.names]
            # "from . import x" imports the submodule x
            for imported in ([f"{module}.{n}" for n in names] if node.module is None else [module]):
                yield node.lineno, imported, names


def _sources():
    return sorted(p for folder in ("workbench", "data_adapters") for p in (REPO / folder).rglob("*.py"))


def test_the_layer_table_covers_every_module():
    unknown = [str(p) for p in _sources() if layer_of(_module_name(p)) is None]
    assert not unknown


def upward_imports(paths, root=REPO):
    found = []
    for path in paths:
        own = layer_of(_module_name(path, root))
        for line, module, _ in imports(path, root):
            target = layer_of(module)
            if target is not None and target not in MAY_IMPORT[own]:
                found.append(f"{path.relative_to(root)}:{line} (layer {own}) imports {module} (layer {target})")
    return found


def test_no_module_imports_upward():
    upward = upward_imports(_sources())
    assert not upward, "\n".join(upward)
    # the check sees the package's real cross-layer imports (it is not vacuous)
    crossing = {(layer_of(_module_name(p)), layer_of(m)) for p in _sources() for _, m, _ in imports(p)}
    assert {(5, 4), (9, 3), (10, 9), (1, 0), (6, 3)} <= crossing


def test_no_module_imports_another_modules_private_names():
    private = []
    for path in _sources():
        for line, module, names in imports(path):
            if layer_of(module) is None:
                continue
            private += [f"{path.relative_to(REPO)}:{line} imports {module}.{n}" for n in names
                        if n.startswith("_") and n != "__version__"]
    assert not private, "\n".join(private)


def test_the_checker_sees_upward_imports(tmp_path):
    """Layer-0 and stats modules importing upward, absolutely, relatively and inside a function."""
    package = tmp_path / "workbench"
    (package / "stats").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "keys.py").write_text("def f():\n    from .report import runner\n")
    (package / "stats" / "__init__.py").write_text("from ..metrics import encoding\nimport workbench.errors\n")
    found = upward_imports(sorted(package.rglob("*.py")), tmp_path)
    assert len(found) == 2 and "keys.py:2 (layer 0) imports workbench.report (layer 10)" in found[0]
    assert "stats/__init__.py:1 (layer 4) imports workbench.metrics (layer 5)" in found[1]
