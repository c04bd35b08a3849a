"""[hardening] Layers only point down: model and processing code never import the layers above them, the shared-facts
leaf imports nothing of the project, and the benchmarks do not lean on test helpers."""
import ast
import re
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
