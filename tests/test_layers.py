"""[hardening] Layers only point down: model and processing code never import the layers above them, the shared-facts
leaf imports nothing of the project, and the benchmarks do not lean on test helpers."""
import ast
import re
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROJECT = ("profvlm", "training", "dataset_scripts", "benchmarks", "tests", "processing", "modeling_profvlm")
# package -> the project packages it must never reach (by import or by a module name handed to importlib)
FORBIDDEN = {
    "modeling_profvlm": ("profvlm", "training", "dataset_scripts", "benchmarks", "tests", "processing"),
    "processing": ("profvlm", "training", "dataset_scripts", "benchmarks", "tests"),
    "training": ("profvlm", "benchmarks", "tests"),
    "dataset_scripts": ("profvlm", "training", "benchmarks", "tests"),
    "benchmarks": ("tests",),
}
LEAF = REPO / "modeling_profvlm" / "profvlm_facts.py"


def referenced_modules(path: Path) -> set[str]:
    """Every absolute module an import names, plus every string constant that looks like a project module name
    (what importlib.import_module or __import__ would be handed)."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            head = node.value.split(".")[0]
            if head in PROJECT and "." in node.value and " " not in node.value and "/" not in node.value:
                names.add(node.value)
    return names


def violations(package: str) -> list[str]:
    found = []
    for path in sorted((REPO / package).rglob("*.py")):
        for module in referenced_modules(path):
            if module.split(".")[0] in FORBIDDEN[package]:
                found.append(f"{path.relative_to(REPO)} -> {module}")
    return found


@pytest.mark.parametrize("package", list(FORBIDDEN))
def test_no_module_reaches_an_upper_layer(package):
    assert violations(package) == []


def test_the_checker_sees_imports_and_importlib_names(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import importlib\nfrom training.sft import main\nimportlib.import_module('profvlm.demo')\n")
    assert {"training.sft", "profvlm.demo"} <= referenced_modules(bad)


def test_the_shared_facts_leaf_imports_nothing_of_the_project():
    tree = ast.parse(LEAF.read_text())
    imported = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    for node in imported:
        assert not (isinstance(node, ast.ImportFrom) and node.level > 0), "the leaf imports a sibling"
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
        assert not [n for n in names if n.split(".")[0] in PROJECT], names


def test_shipped_code_points_at_no_document_outside_the_repository():
    outside = re.compile(r"PAPER\.md|HF_STACK_NOTES|EGOEXO4D_FORMAT|ENVIRONMENT\.md|ARCHITECTURE\.md|STYLE\.md|"
                         r"shared/design|§\d")
    found = [f"{path.relative_to(REPO)}:{i}" for package in ("modeling_profvlm", "processing", "profvlm", "training",
                                                              "dataset_scripts", "benchmarks")
             for path in sorted((REPO / package).rglob("*")) if path.suffix in (".py", ".yaml", ".jinja")
             for i, line in enumerate(path.read_text().splitlines(), 1) if outside.search(line)]
    assert found == []


def module_imports(path: Path, package: str) -> set[str]:
    """The project modules (dotted, `package.module`) a file imports anywhere in it, function-level imports and
    relative ones (`from .x import y`, `from . import x`) included."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package if node.level else (node.module or "")
            module = f"{base}.{node.module}" if node.level and node.module else base
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)  # `from . import x` names a module
    modules = {f"{p}.{f.stem}" for p in PROJECT for f in (REPO / p).glob("*.py")}
    return {name for name in found if name in modules}


def import_cycles() -> list[list[str]]:
    """Every cycle in the project's module import graph (each found once, from its smallest module name)."""
    graph = {f"{p}.{f.stem}": module_imports(f, p) for p in PROJECT if p != "tests" for f in (REPO / p).glob("*.py")}
    cycles = []

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                cycles.append(path)
            elif nxt > start and nxt not in path:
                walk(start, nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return cycles


def test_no_import_cycles_between_project_modules():
    assert import_cycles() == []


def test_the_cycle_finder_sees_function_level_and_relative_imports(tmp_path, monkeypatch):
    package = tmp_path / "profvlm"
    package.mkdir()
    (package / "a.py").write_text("def f():\n    from .b import g\n")
    (package / "b.py").write_text("from profvlm.a import f\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    monkeypatch.setattr(sys.modules[__name__], "PROJECT", ("profvlm",))
    assert import_cycles() == [["profvlm.a", "profvlm.b"]]
