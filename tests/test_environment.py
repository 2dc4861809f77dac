"""environment.yml (conda-forge) and pyproject.toml must list the same dependencies."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def _name(requirement: str) -> str:
    base = re.split(r"[<>=!~\[ ;]", requirement.strip(), maxsplit=1)[0]
    return base.lower().replace("_", "-")


def _spec(requirement: str) -> str:
    """Version constraint with the package name and extras removed."""
    requirement = requirement.split(";")[0]  # an environment marker is pip's, not conda's
    return re.sub(r"^[A-Za-z0-9_.\-]+(\[[^\]]*\])?", "", requirement.strip()).replace(" ", "")


def test_environment_yml_matches_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text("utf-8"))
    deps = env["dependencies"]
    conda = [d for d in deps if isinstance(d, str) and _name(d) not in ("python", "pip")]
    conda += [d for d in deps if isinstance(d, dict) for d in d.get("pip", [])]
    pyproject = {_name(r): _spec(r) for r in project["dependencies"]}
    environment = {_name(r): _spec(r) for r in conda}
    assert environment == pyproject


def test_python_version_agrees() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text("utf-8"))
    python = next(d for d in env["dependencies"] if isinstance(d, str) and _name(d) == "python")
    assert _spec(python) == project["requires-python"]
