"""Provenance of an output: which registry, rules and reference data made it, and when.

Every file BasinWatch writes says where it came from (the 说明 sheet of the Excel
workbook, GeoJSON and GeoPackage metadata, a ``*.provenance.json`` sidecar next to the
CSV files; see :mod:`geo.export`). The record names the registry file and its SHA-256,
the date the rules were evaluated at, the version of every catalog and reference layer,
the generation time and the row counts.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from pathlib import Path
from typing import Any

__all__ = ["Provenance", "LayerVersion", "reference_versions", "layer_versions", "software"]

#: Catalog files whose version the record lists (file -> key of its version).
_CATALOGS = (
    "rules.toml",
    "industries.toml",
    "standards.toml",
    "registry.toml",
    "issues.toml",
    "labels.toml",
    "layers.toml",
)


@dataclass(frozen=True)
class LayerVersion:
    """One reference layer as used: id, title, data date, file and its SHA-256."""

    id: str
    title_zh: str
    date: str
    file: str
    sha256: str
    version: str = ""

    def to_dict(self) -> dict[str, str]:
        """JSON-ready mapping (``version`` only when the layer registry states one)."""
        out = {"id": self.id, "title_zh": self.title_zh, "date": self.date,
               "file": self.file, "sha256": self.sha256}
        if self.version:
            out["version"] = self.version
        return out


def software() -> str:
    """``BasinWatch <version>`` of the installed package."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"BasinWatch {version('basinwatch')}"
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "BasinWatch (not installed)"


def _toml_version(name: str) -> str:
    from layers.catalog import read_data_toml

    raw = read_data_toml(name)
    value = raw.get("version", raw.get("meta", {}).get("version", ""))
    return str(value)


@cache
def reference_versions() -> dict[str, str]:
    """Version of each bundled catalog file (``rules.toml`` -> ``2019-plan-v1``, ...)."""
    return {name: _toml_version(name) for name in _CATALOGS}


def layer_versions() -> tuple[LayerVersion, ...]:
    """Every reference layer as classification uses it now: id, title, date, file, SHA-256.

    Follows the active version of each layer (:func:`layers.registry.active_versions`): a
    bundled layer names its file under ``layers/data``, an imported one its version's
    GeoPackage; the digest is that file's SHA-256 and ``version`` the layer's version id
    (``bundled``, ``v2``, ...), so an output states exactly which boundaries it used.
    """
    from layers.catalog import data_path
    from layers.registry import BUNDLED, active_versions, list_layers
    from layers.versions import version_path

    infos = {info.id: info for info in list_layers()}
    digests: dict[Path, str] = {}
    out = []
    for layer_id, record in active_versions().items():
        info = infos[layer_id]
        if record.version == BUNDLED:
            if not info.file:
                continue
            path, name = data_path(info.file), info.file
        else:
            path = version_path(record)
            name = path.name
        if path not in digests:
            digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        out.append(LayerVersion(id=layer_id, title_zh=info.title_zh,
                                date=str(record.date or info.provenance.date), file=name,
                                sha256=digests[path], version=record.version))
    return tuple(out)


@dataclass(frozen=True)
class Provenance:
    """Where an output came from.

    Attributes
    ----------
    registry_name
        File name of the registry ('' when unknown, e.g. a filtered list from a store).
    registry_sha256
        SHA-256 of the registry file's bytes ('' when unknown).
    as_of
        Date the rules were evaluated at.
    generated_at
        When the output was made (local time with UTC offset).
    accepted
        Enterprises in the output.
    rejected
        Registry rows that could not be used (``None`` when unknown).
    source_rows
        Data rows of the registry (``None`` when unknown).
    catalogs
        Catalog file -> version (:func:`reference_versions`).
    layers
        Reference layers used (:func:`layer_versions`).
    generator
        Software and version (:func:`software`).
    note
        Free text, e.g. the filter of an API export.
    verdict_counts
        Verdict id -> enterprises, strongest first.
    """

    registry_name: str
    registry_sha256: str
    as_of: date | None
    generated_at: datetime
    accepted: int
    rejected: int | None = None
    source_rows: int | None = None
    catalogs: Mapping[str, str] = field(default_factory=reference_versions)
    layers: tuple[LayerVersion, ...] = field(default_factory=layer_versions)
    generator: str = field(default_factory=software)
    note: str = ""
    verdict_counts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def now(cls, **kwargs: Any) -> Provenance:
        """A record generated now (local time); other fields as keyword arguments."""
        return cls(generated_at=datetime.now().astimezone().replace(microsecond=0), **kwargs)

    def with_counts(
        self, *, accepted: int, verdict_counts: Mapping[str, int] | None = None
    ) -> Provenance:
        """The same record for a subset of the list (e.g. one basin's sheet or a filter)."""
        return replace(self, accepted=accepted, verdict_counts=dict(verdict_counts or {}))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready mapping (the content of ``*.provenance.json``)."""
        return {
            "generator": self.generator,
            "generated_at": self.generated_at.isoformat(),
            "registry": {
                "file": self.registry_name,
                "sha256": self.registry_sha256,
                "data_rows": self.source_rows,
            },
            "as_of": self.as_of.isoformat() if self.as_of else None,
            "counts": {
                "accepted": self.accepted,
                "rejected": self.rejected,
                "by_verdict": dict(self.verdict_counts),
            },
            "catalogs": dict(self.catalogs),
            "layers": [layer.to_dict() for layer in self.layers],
            "note": self.note,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as indented UTF-8 JSON text."""
        return json.dumps(self.to_dict(), ensure_ascii=False, indent=2)

    def rows_zh(self, labels: Mapping[str, str]) -> list[tuple[str, str]]:
        """(label, value) rows of the Excel 说明 sheet (labels: ``labels.toml`` [provenance])."""

        def count(value: int | None) -> str:
            return "" if value is None else f"{value:,}"

        rows = [
            (labels["generator"], self.generator),
            (labels["generated_at"], self.generated_at.isoformat(sep=" ")),
            (labels["registry_file"], self.registry_name or labels["unknown"]),
            (labels["registry_sha256"], self.registry_sha256 or labels["unknown"]),
            (labels["as_of"], self.as_of.isoformat() if self.as_of else labels["unknown"]),
            (labels["source_rows"], count(self.source_rows) or labels["unknown"]),
            (labels["accepted"], count(self.accepted)),
            (labels["rejected"], count(self.rejected) or labels["unknown"]),
        ]
        rows += [(f"{labels['catalog']} {name}", version) for name, version in
                 self.catalogs.items()]
        rows += [
            (f"{labels['layer']} {layer.title_zh} ({layer.id})",
             f"{labels['layer_date']} {layer.date}; {layer.file} SHA-256 {layer.sha256}"
             + (f"; {labels['layer_version']} {layer.version}" if layer.version else ""))
            for layer in self.layers
        ]
        if self.note:
            rows.append((labels["note"], self.note))
        return rows
