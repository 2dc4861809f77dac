"""Shared fixtures: the bundled sample registry run once per session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


@pytest.fixture
def data_file(tmp_path: Path):
    """Copy a file from ``tests/data`` to a temporary folder and return its path."""

    def copy(name: str) -> Path:
        target = tmp_path / name
        shutil.copy(DATA / name, target)
        return target

    return copy


@pytest.fixture(scope="session")
def sample_result():
    """The pipeline run on the bundled synthetic sample (read-only: do not mutate)."""
    from datetime import date

    from geo.pipeline import run_pipeline

    return run_pipeline(as_of=date(2019, 6, 30))
