"""The layering rules: thin pages, a core that never imports streamlit."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = sorted((ROOT / "app_pages").glob("*.py"))
CORE = sorted((ROOT / "infalign_core").rglob("*.py"))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_page_is_at_most_200_lines(page):
    lines = page.read_text(encoding="utf-8").count("\n")
    assert lines <= 200, f"{page.name} has {lines} lines: move library work to infalign_core"


@pytest.mark.parametrize("module", CORE, ids=lambda p: str(p.relative_to(ROOT)))
def test_core_never_imports_streamlit(module):
    tree = ast.parse(module.read_text(encoding="utf-8"))
    imported = [
        alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    ] + [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [name for name in imported if name.split(".")[0] == "streamlit"]


def test_figures_package_keeps_the_old_imports():
    from infalign_core import figures

    for name in ("frontier_figure", "density_figure", "transform_curves_figure", "tradeoff_figure", "COLORS"):
        assert hasattr(figures, name)
