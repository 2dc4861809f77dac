"""Static checks of the notebooks in ``notebooks/`` (they are executed separately by nbmake).

Checks that outputs are stripped, the kernel is ``python3``, and that the notebooks only use
BasinWatch's public API: ``from geo.<module> import name`` / ``from layers.<module> import name``
where ``name`` is in that module's ``__all__``, and nothing that needs the network.
"""

from __future__ import annotations

import ast
import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
REQUIRED = (
    "01_basins_and_standards.ipynb",
    "02_classify_your_registry.ipynb",
    "03_hotspots_density.ipynb",
    "04_export_basin_list.ipynb",
    "05_basin_year_cases.ipynb",
)
PROJECT_PACKAGES = ("geo", "layers", "api")
#: Public modules a notebook may import names from (the notebooks' contract with the engine).
PUBLIC_MODULES = (
    "geo.pipeline",
    "geo.ingest",
    "geo.geocoding",
    "geo.classify",
    "geo.rules",
    "geo.export",
    "geo.raster",
    "geo.synthetic",
    "geo.crs",
    "geo.errors",
    "layers.registry",
    "layers.catalog",
    "layers.webmap",
    "geo.monitoring",
    "geo.cases",
    "geo.caselists",
    "geo.synthetic_year",
    "layers.casework",
)
_URL = re.compile(r"https?://", re.I)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _code_cells(nb: dict[str, Any]) -> list[str]:
    return ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]


def _imports(source: str) -> list[tuple[str, list[str]]]:
    """``(module, [names])`` for every import statement in ``source``."""
    found: list[tuple[str, list[str]]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            found.append((node.module or "", [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return found


def _api_problems(source: str) -> list[str]:
    """Imports in ``source`` that go beyond the public API of the project packages."""
    problems: list[str] = []
    for module, names in _imports(source):
        if module.split(".")[0] not in PROJECT_PACKAGES:
            continue
        if module not in PUBLIC_MODULES:
            problems.append(f"import of non-public module {module}")
            continue
        public = set(importlib.import_module(module).__all__)
        problems += [f"{module}.{n} is not in __all__" for n in names if n not in public]
    return problems


def test_required_notebooks_exist() -> None:
    names = {p.name for p in NOTEBOOKS}
    assert set(REQUIRED) <= names, f"missing: {set(REQUIRED) - names}"


@pytest.fixture(params=NOTEBOOKS, ids=lambda p: p.name)
def notebook(request: pytest.FixtureRequest) -> tuple[Path, dict[str, Any]]:
    path: Path = request.param
    return path, _load(path)


def test_outputs_stripped(notebook: tuple[Path, dict[str, Any]]) -> None:
    path, nb = notebook
    dirty = [
        i
        for i, c in enumerate(nb["cells"])
        if c["cell_type"] == "code" and (c.get("outputs") or c.get("execution_count") is not None)
    ]
    assert not dirty, f"{path.name}: cells {dirty} have outputs or an execution count"


def test_kernel_is_python3(notebook: tuple[Path, dict[str, Any]]) -> None:
    path, nb = notebook
    assert nb["nbformat"] == 4
    assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name


def test_code_parses_and_documents(notebook: tuple[Path, dict[str, Any]]) -> None:
    path, nb = notebook
    for source in _code_cells(nb):
        ast.parse(source)  # a syntax error would only show when executed
    kinds = [c["cell_type"] for c in nb["cells"]]
    assert kinds[0] == "markdown", f"{path.name} should open with a markdown introduction"
    assert kinds.count("markdown") >= 3, f"{path.name} explains too little"


def test_only_public_api(notebook: tuple[Path, dict[str, Any]]) -> None:
    path, nb = notebook
    problems = [p for source in _code_cells(nb) for p in _api_problems(source)]
    assert not problems, f"{path.name}: {problems}"


def test_offline_and_no_repo_writes(notebook: tuple[Path, dict[str, Any]]) -> None:
    path, nb = notebook
    code = "\n".join(_code_cells(nb))
    assert not _URL.search(code), f"{path.name} references a URL; notebooks must run offline"
    assert "/work/" not in code and "tiles=\"OpenStreetMap\"" not in code
    if re.search(r"\.(to_csv|to_file|to_excel|write_text|save)\(|export(_all)?\(|write_cog\(", code):
        # anything written goes to a temporary directory
        assert "tempfile." in code, f"{path.name} writes files but not into a tempfile directory"


def test_import_checker_catches_private_names() -> None:
    """The public-API check itself: private names and modules are reported, public ones not."""
    src = (
        "import numpy as np\n"
        "from geo.raster import _snap_extent, density\n"
        "from geo._gazetteer import anything\n"
        "from layers.catalog import standards\n"
    )
    assert _api_problems(src) == [
        "geo.raster._snap_extent is not in __all__",
        "import of non-public module geo._gazetteer",
    ]
