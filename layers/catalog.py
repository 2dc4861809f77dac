"""Typed loaders for the catalogs in ``layers/data`` (industries, standards, rules, labels).

Every catalog is a TOML file with its source recorded in the file; loaders validate it
with pydantic and cache the result, so a malformed file fails loudly at first use.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from geo.errors import ReferenceDataError

__all__ = ["DATA_DIR", "data_path", "read_data_toml", "Industry", "industries"]

DATA_DIR = Path(__file__).resolve().parent / "data"


def data_path(name: str) -> Path:
    """Path of a bundled data file, raising :class:`ReferenceDataError` if it is missing."""
    path = DATA_DIR / name
    if not path.exists():
        raise ReferenceDataError(f"Reference data file {path} is missing; reinstall BasinWatch.")
    return path


@cache
def read_data_toml(name: str) -> dict[str, Any]:
    """Parse a bundled TOML data file (cached)."""
    path = data_path(name)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ReferenceDataError(f"{path} is not valid TOML: {exc}") from exc


class Industry(BaseModel):
    """One of the plan's 12 key industries."""

    id: str
    name_zh: str
    name_en: str
    codes: list[str]
    aliases: list[str] = []


@cache
def industries() -> tuple[Industry, ...]:
    """The 12 key industries from ``industries.toml``, in the plan's order."""
    raw = read_data_toml("industries.toml")
    try:
        return tuple(Industry.model_validate(item) for item in raw["industry"])
    except (KeyError, ValidationError) as exc:
        raise ReferenceDataError(f"industries.toml is malformed: {exc}") from exc
