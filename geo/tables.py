"""Any CSV/XLSX table read exactly as a registry is read, for the other inputs.

Monitoring files (:mod:`geo.monitoring`) and case spreadsheets (:mod:`geo.cases`) arrive in
the same forms as registries (UTF-8 or GBK CSV, comma or tab, XLSX recognised by content,
Chinese headers with full-width forms and bracketed units). This module reuses
:mod:`geo.ingest`'s own reader and header normalisation rather than a second reader, and
gives them a small public surface: read the cells as text, map headers to canonical names
from a catalog's aliases, parse numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import pandas as pd

from geo.errors import RegistryFormatError
from geo.ingest import _map_headers, _norm_header, _parse_numbers, _read_source, _read_table

__all__ = ["read_table", "header_lookup", "map_headers", "parse_numbers"]


def read_table(
    source: str | Path | IO[bytes] | bytes, *, filename: str | None = None,
    kind: str = "file",
) -> tuple[pd.DataFrame, str]:
    """Read a CSV/XLSX with the registry reader: every cell as text (``""`` when blank).

    Parameters
    ----------
    source
        Path, binary file object or bytes.
    filename
        Original name when reading a buffer (its suffix picks the format).
    kind
        What the file is, for error messages (``"monitoring file"``).

    Returns
    -------
    tuple
        The table and the file name.

    Raises
    ------
    RegistryFormatError
        If the file cannot be read; the message names ``kind``.
    """
    data, name = _read_source(source, filename)
    try:
        return _read_table(data, name), name
    except RegistryFormatError as exc:
        raise RegistryFormatError(exc.msg.replace(" registry", f" {kind}")) from exc


def header_lookup(columns: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Normalised header spelling -> canonical column, from ``{canonical: {aliases}}``.

    Matching ignores case, whitespace, full-width forms and a trailing bracketed unit, as
    for registries (``浓度(mg/L)`` matches ``浓度``).
    """
    lookup: dict[str, str] = {}
    for canonical, item in columns.items():
        for alias in [canonical, *item.get("aliases", [])]:
            lookup.setdefault(_norm_header(alias), canonical)
    return lookup


def map_headers(frame: pd.DataFrame, lookup: Mapping[str, str]) -> dict[str, str]:
    """Source header -> canonical column for the headers ``lookup`` knows.

    Raises
    ------
    RegistryFormatError
        If two headers mean the same column.
    """
    return _map_headers(frame, lookup)


def parse_numbers(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Numbers of text cells (full-width digits, units, ``°`` allowed): (value, unparseable)."""
    return _parse_numbers(values)
