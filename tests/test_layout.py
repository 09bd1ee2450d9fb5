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


# --- the layers inside infalign_core (README "The library"; ../shared/DESIGN.md) ----------------
# Bottom to top. A module imports only from its own layer and the layers it is allowed below;
# theory and language models both sit on base and never import each other. A new module goes
# into one of these lists (a package by its name covers its submodules, e.g. "figures").
LAYERS = {
    "base": ["errors", "checks", "runtime", "expression", "classroom", "filememo", "theory_store", "text"],
    "theory": ["transforms", "theory", "optimal", "procedures", "winrate", "explorer", "families"],
    "language models": [
        *(
            "chat",
            "models",
            "sampling",
            "sampling_settings",
            "identity",
            "reward_base",
            "rewards",
            "rubrics",
            "judge",
            "proxy",
            "data",
            "hab",
        ),
        *("world", "lexicon", "reviews"),
    ],
    "training": ["calibration", "ctrl", "integrations"],
    "evaluation": [
        "arena",
        "arena_kl",
        "arena_theory",
        "arena_results",
        "optimum",
        "eval_rewards",
        "agency",
        "goodhart",
        "optimum_gap",
    ],
    "store": ["runs", "gallery", "challengers"],
    "app support": [
        "cli",
        "cli_agency",
        "cli_output",
        "report",
        "tour",
        "links",
        "figures",
        "gallery_build",
        "__main__",
    ],
}
MAY_IMPORT = {
    "base": {"base"},
    "theory": {"base", "theory"},
    "language models": {"base", "language models"},
    "training": {"base", "theory", "language models", "training"},
    "evaluation": {"base", "theory", "language models", "training", "evaluation"},
    "store": {"base", "theory", "language models", "training", "evaluation", "store"},
    "app support": set(LAYERS),
}
NO_TORCH = ("theory", "base")  # the theory engine runs without torch installed


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every module a file imports, at any depth (function-level imports included), absolute names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)  # `from pkg import module`
    return found


def _import_graph() -> dict[str, set[str]]:
    """infalign_core's modules and the infalign_core modules each imports."""
    modules = {_module_name(path): path for path in CORE}
    graph = {}
    for name, path in modules.items():
        graph[name] = {
            imported
            for imported in _imports(path)
            if imported in modules and imported not in (name, "infalign_core")
        }
    return graph


def _layer_of(module: str) -> str | None:
    short = module.removeprefix("infalign_core.")
    for layer, names in LAYERS.items():
        if short in names or short.split(".")[0] in names:
            return layer
    return None


def test_every_core_module_is_placed_in_a_layer():
    unmapped = [m for m in _import_graph() if m != "infalign_core" and _layer_of(m) is None]
    assert not unmapped, (
        f"{', '.join(unmapped)} not in the layer map: add it to LAYERS in tests/test_layout.py "
        "(and to the README's library table)"
    )


def test_no_import_goes_up_a_layer_and_theory_never_meets_language_models():
    wrong = [
        f"{module} ({_layer_of(module)}) imports {imported} ({_layer_of(imported)})"
        for module, imported_set in sorted(_import_graph().items())
        for imported in sorted(imported_set)
        if module != "infalign_core"
        and _layer_of(module) is not None
        and _layer_of(imported) not in MAY_IMPORT[_layer_of(module)]
    ]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_theory_layer_never_imports_torch():
    heavy = [
        f"{module} imports {name}"
        for module, path in ((_module_name(p), p) for p in CORE)
        if _layer_of(module) in NO_TORCH
        for name in sorted(_imports(path))
        if name.split(".")[0] in ("torch", "transformers")
    ]
    assert not heavy, "\n".join(heavy)


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of the graph (its modules in order, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


def test_infalign_core_has_no_import_circle():
    circle = _cycle(_import_graph())
    assert circle is None, "import circle: " + " -> ".join(circle)


def test_the_circle_finder_finds_a_planted_circle_and_the_layer_check_an_upward_import():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
    assert "theory" not in MAY_IMPORT["language models"] and "language models" not in MAY_IMPORT["theory"]
    assert (
        _layer_of("infalign_core.figures.arena") == "app support" and _layer_of("infalign_core.nope") is None
    )


def test_the_readmes_layer_table_is_the_layer_map():
    rows = {}
    for line in (ROOT / "README.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].split(" (")[0] in LAYERS:
            rows[cells[0].split(" (")[0]] = {m.strip("`/ ") for m in cells[1].split(",")}
    for layer, modules in LAYERS.items():
        assert rows.get(layer) == set(modules), (
            f"README's layer table, row {layer!r}: {sorted(rows.get(layer, ()))}; "
            f"tests/test_layout.py LAYERS: {sorted(modules)}. Keep the two the same."
        )


def test_every_public_name_in_infalign_core_is_defined_once():
    where: dict[str, list[str]] = {}
    for path in CORE:
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                where.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    twice = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert not twice, f"one name, one thing (rename one or call the other): {twice}"
