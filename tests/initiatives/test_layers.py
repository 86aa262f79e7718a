"""The app import direction (DESIGN.md §3): nothing below initiatives imports it."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_units_forums_and_measures_never_import_initiatives():
    offenders = [
        str(path.relative_to(ROOT))
        for app in ("units", "forums", "measures")
        for path in (ROOT / app).rglob("*.py")
        if {"initiatives", "dashboards"} & _imports(path)
    ]
    assert offenders == []


def test_initiatives_imports_only_apps_above_it():
    apps = {"units", "forums", "measures", "initiatives", "dashboards", "lhs"}
    for path in (ROOT / "initiatives").rglob("*.py"):
        assert _imports(path) & apps <= {"units", "forums", "measures", "initiatives"}, path
