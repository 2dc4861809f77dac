"""Versions of reference layers: immutable imported versions and an explicit active pointer.

Every import of a boundary file (:mod:`layers.imports`) becomes a new **version** of one layer
id (``shima`` -> ``v1``, ``v2``, ...), stored as its own GeoPackage under the versions root
and never modified again. The bundled geometry of a layer is the version ``bundled``. Which
version classification uses is chosen explicitly per layer (:func:`activate`); every switch
is appended to a history, so :func:`rollback` returns to the version active before the
last switch with one call.

On disk (``<root>`` = :func:`versions_root`)::

    <root>/manifest.json                   versions, active pointers, history (atomic writes)
    <root>/<layer_id>/<version>.gpkg       one immutable GeoPackage per imported version
    <root>/<layer_id>/<version>.report.json   the validation report of the import

Writers serialise on an exclusive ``flock`` of ``<root>/.lock`` and replace the manifest
atomically (temp file + ``os.replace``), so readers in other processes (uvicorn workers,
the CLI) always see a whole manifest; :func:`state_token` changes with every write and is
what :mod:`layers.registry` watches to drop its caches.

The root is ``BASINWATCH_LAYERS_DIR`` if set, else ``<BASINWATCH_DATA_DIR>/layers`` (default
``./basinwatch-data/layers``, the same data folder the API's store uses); an application
can pin it with :func:`set_root`. No root on disk means: every layer is ``bundled``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Final, Literal

import geopandas as gpd
import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from geo.errors import GeoError, ReferenceDataError

__all__ = [
    "BUNDLED",
    "VERSIONS_ENV",
    "ImportKind",
    "LayerVersion",
    "Activation",
    "NewLayer",
    "Manifest",
    "VersionError",
    "versions_root",
    "set_root",
    "state_token",
    "read_manifest",
    "content_sha256",
    "add_version",
    "activate",
    "rollback",
    "active_version_id",
    "versions_of",
    "get_version",
    "new_layers",
    "check_layer_id",
    "version_path",
]

logger = logging.getLogger(__name__)

#: Version id of the geometry shipped in ``layers/data``.
BUNDLED: Final = "bundled"
VERSIONS_ENV: Final = "BASINWATCH_LAYERS_DIR"
_DATA_ENV: Final = "BASINWATCH_DATA_DIR"
_MANIFEST: Final = "manifest.json"
_ID = re.compile(r"^[a-z][a-z0-9_]{1,39}$")

#: Layer kinds that can be imported.
ImportKind = Literal["basin", "region", "park", "district"]

_root_override: Path | None = None


class VersionError(GeoError, ValueError):
    """A layer version cannot be found, activated or stored."""

    http_status = 422


class LayerVersion(BaseModel):
    """One version of a layer with its provenance (immutable once written)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer_id: str
    version: str
    kind: str
    file: str | None = Field(None, description="GeoPackage path relative to the root")
    sha256: str = Field(description="fingerprint of the geometries and attributes")
    feature_count: int
    area_km2: float
    vertices: int
    source: str
    licence: str
    accuracy_m: float = Field(ge=0.0)
    method: str
    attribution: str = ""
    date: str = ""
    created_by: str
    created_at: str
    source_file: str | None = None
    source_sha256: str | None = None
    source_crs: str | None = None
    transformation: str | None = None
    repaired: bool = False
    warnings: list[str] = []

    @property
    def label(self) -> str:
        """``layer@version``, e.g. ``shima@v2``."""
        return f"{self.layer_id}@{self.version}"


class Activation(BaseModel):
    """One switch of a layer's active version (append-only history)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    layer_id: str
    version: str
    previous: str
    by: str
    at: str
    action: Literal["activate", "rollback"] = "activate"


class NewLayer(BaseModel):
    """Registry metadata of a layer id that ``layers.toml`` does not list (first import)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    kind: str
    title_zh: str
    title_en: str


class Manifest(BaseModel):
    """Everything the versions root records."""

    model_config = ConfigDict(extra="forbid")

    format: int = 1
    versions: list[LayerVersion] = []
    active: dict[str, str] = {}
    history: list[Activation] = []
    new_layers: list[NewLayer] = []


# --------------------------------------------------------------------------- location
def versions_root() -> Path:
    """Absolute path of the versions root (see the module docstring for the order)."""
    if _root_override is not None:
        return _root_override
    env = os.environ.get(VERSIONS_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return (Path(os.environ.get(_DATA_ENV) or "basinwatch-data") / "layers").resolve()


def set_root(path: str | os.PathLike[str] | None) -> None:
    """Pin the versions root for this process (``None`` returns to the environment)."""
    global _root_override
    _root_override = None if path is None else Path(path).expanduser().resolve()


def state_token() -> tuple[str, int, int]:
    """Changes whenever the manifest is rewritten (root, mtime in ns, size); cheap (a stat)."""
    root = versions_root()
    try:
        st = (root / _MANIFEST).stat()
    except OSError:
        return ("", 0, 0)  # no manifest anywhere means the same thing: all bundled
    return (str(root), st.st_mtime_ns, st.st_size)


# --------------------------------------------------------------------------- manifest I/O
@cache
def _read_cached(path: str, mtime_ns: int, size: int) -> Manifest:
    try:
        return Manifest.model_validate_json(Path(path).read_bytes())
    except (OSError, ValidationError, ValueError) as exc:
        raise ReferenceDataError(f"Layer versions manifest {path} is unreadable: {exc}") from exc


def read_manifest() -> Manifest:
    """The current manifest (an empty one when the root has none); cached per file state."""
    root, mtime, size = state_token()
    if not root:
        return Manifest()
    return _read_cached(str(Path(root) / _MANIFEST), mtime, size)


@contextlib.contextmanager
def _locked() -> Iterator[Path]:
    root = versions_root()
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".lock", "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_manifest(root: Path, manifest: Manifest) -> None:
    text = manifest.model_dump_json(indent=1)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=".manifest-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / _MANIFEST)


def _fresh(root: Path) -> Manifest:
    path = root / _MANIFEST
    if not path.exists():
        return Manifest()
    return Manifest.model_validate_json(path.read_bytes())


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --------------------------------------------------------------------------- content
def content_sha256(frame: gpd.GeoDataFrame) -> str:
    """Fingerprint of a layer's content: 2-D WKB of every geometry and its attributes.

    Independent of file format and write time, so the same geometry imported twice (or a
    bundled layer and its export) has the same fingerprint.
    """
    h = hashlib.sha256()
    geoms = np.asarray(frame.geometry.values, dtype=object)
    for wkb in shapely.to_wkb(geoms, output_dimension=2, byte_order=1):
        h.update(len(wkb).to_bytes(8, "little"))
        h.update(wkb)
    props = frame.drop(columns=frame.geometry.name)
    records = props.astype(object).where(props.notna(), None).to_dict("records")
    h.update(json.dumps(records, ensure_ascii=False, sort_keys=True, default=str).encode())
    return h.hexdigest()


def version_path(record: LayerVersion) -> Path:
    """Absolute path of an imported version's GeoPackage."""
    if record.file is None:
        raise VersionError(f"{record.label} is bundled: it has no version file.")
    return versions_root() / record.file


# --------------------------------------------------------------------------- queries
def versions_of(layer_id: str) -> list[LayerVersion]:
    """Imported versions of a layer, oldest first (the bundled one is not listed here)."""
    return [v for v in read_manifest().versions if v.layer_id == layer_id]


def get_version(layer_id: str, version: str) -> LayerVersion:
    """An imported version by id.

    Raises
    ------
    VersionError
        If the layer has no such version; the message lists the ones it has.
    """
    for v in versions_of(layer_id):
        if v.version == version:
            return v
    known = [BUNDLED] + [v.version for v in versions_of(layer_id)]
    raise VersionError(
        f"Layer '{layer_id}' has no version '{version}': it has {', '.join(known)}."
    )


def active_version_id(layer_id: str) -> str:
    """The active version id of a layer (``bundled`` unless another was activated)."""
    return read_manifest().active.get(layer_id, BUNDLED)


def new_layers() -> list[NewLayer]:
    """Layers created by imports under ids ``layers.toml`` does not know."""
    return list(read_manifest().new_layers)


# --------------------------------------------------------------------------- writes
def _next_version(manifest: Manifest, layer_id: str) -> str:
    numbers = [int(v.version[1:]) for v in manifest.versions
               if v.layer_id == layer_id and re.fullmatch(r"v\d+", v.version)]
    return f"v{max(numbers, default=0) + 1}"


def check_layer_id(layer_id: str) -> str:
    """Return ``layer_id`` if it is a usable id (lower-case letters, digits, underscores).

    Raises
    ------
    VersionError
        Otherwise, saying what is expected.
    """
    if not _ID.fullmatch(layer_id):
        raise VersionError(
            f"--id: '{layer_id}' is not a usable layer id; expected 2-40 characters of "
            "lower-case letters, digits and '_', starting with a letter (e.g. shima)."
        )
    return layer_id


def add_version(
    frame: gpd.GeoDataFrame,
    *,
    layer_id: str,
    kind: str,
    provenance: dict[str, Any],
    report: dict[str, Any] | None = None,
    new_layer: NewLayer | None = None,
) -> LayerVersion:
    """Store ``frame`` (EPSG:4326) as the next version of ``layer_id``; it is not activated.

    Parameters
    ----------
    frame
        The validated layer, EPSG:4326.
    layer_id, kind
        Layer id and kind.
    provenance
        ``LayerVersion`` fields other than those computed here (source, licence,
        accuracy_m, method, created_by, source_file, ...).
    report
        The validation report, written next to the GeoPackage.
    new_layer
        Registry metadata when ``layer_id`` is not in ``layers.toml``.

    Returns
    -------
    The stored version's record.
    """
    from layers.build._common import area_km2

    check_layer_id(layer_id)
    if frame.crs is None or frame.crs.to_epsg() != 4326:
        raise VersionError(f"{layer_id}: a version must be stored in EPSG:4326.")
    geoms = np.asarray(frame.geometry.values, dtype=object)
    with _locked() as root:
        manifest = _fresh(root)
        version = _next_version(manifest, layer_id)
        rel = f"{layer_id}/{version}.gpkg"
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{version}.tmp.gpkg")
        tmp.unlink(missing_ok=True)
        frame.to_file(tmp, driver="GPKG", layer=layer_id, engine="pyogrio")
        os.replace(tmp, target)
        if report is not None:
            (root / f"{layer_id}/{version}.report.json").write_text(
                json.dumps(report, ensure_ascii=False, indent=1, default=str), encoding="utf-8"
            )
        record = LayerVersion(
            layer_id=layer_id,
            version=version,
            kind=kind,
            file=rel,
            sha256=content_sha256(frame),
            feature_count=len(frame),
            area_km2=round(float(np.sum(area_km2(geoms))), 3),
            vertices=int(shapely.get_num_coordinates(geoms).sum()),
            created_at=_now(),
            **provenance,
        )
        manifest.versions.append(record)
        if new_layer is not None and all(n.id != layer_id for n in manifest.new_layers):
            manifest.new_layers.append(new_layer)
        _write_manifest(root, manifest)
    logger.info("stored %s (%d features) in %s", record.label, len(frame), target)
    return record


def activate(layer_id: str, version: str, *, by: str) -> Activation:
    """Make ``version`` (or ``bundled``) the active version of ``layer_id``.

    Raises
    ------
    VersionError
        If the version does not exist, or ``bundled`` is asked of a layer with no bundled
        geometry.
    """
    return _switch(layer_id, version, by=by, action="activate")


def rollback(layer_id: str, *, by: str) -> Activation:
    """Return ``layer_id`` to the version that was active before its last switch.

    Raises
    ------
    VersionError
        If the layer was never switched.
    """
    history = [a for a in read_manifest().history if a.layer_id == layer_id]
    if not history:
        raise VersionError(
            f"Layer '{layer_id}' has never been switched: nothing to roll back "
            f"(active: {active_version_id(layer_id)})."
        )
    return _switch(layer_id, history[-1].previous, by=by, action="rollback")


def _switch(layer_id: str, version: str, *, by: str, action: Literal["activate", "rollback"]
            ) -> Activation:
    with _locked() as root:
        manifest = _fresh(root)
        if version == BUNDLED:
            if any(n.id == layer_id for n in manifest.new_layers):
                raise VersionError(
                    f"Layer '{layer_id}' was created by an import and has no bundled version."
                )
            _bundled_layer_ids_check(layer_id)
        elif not any(v.layer_id == layer_id and v.version == version
                     for v in manifest.versions):
            known = [BUNDLED] + [v.version for v in manifest.versions if v.layer_id == layer_id]
            raise VersionError(
                f"Layer '{layer_id}' has no version '{version}': it has {', '.join(known)}."
            )
        previous = manifest.active.get(layer_id, BUNDLED)
        rec = Activation(layer_id=layer_id, version=version, previous=previous, by=by,
                         at=_now(), action=action)
        if version == BUNDLED:
            manifest.active.pop(layer_id, None)
        else:
            manifest.active[layer_id] = version
        manifest.history.append(rec)
        _write_manifest(root, manifest)
    logger.info("%s %s: %s -> %s by %s", action, layer_id, previous, version, by)
    return rec


def _bundled_layer_ids_check(layer_id: str) -> None:
    from layers.registry import bundled_layer_ids

    if layer_id not in bundled_layer_ids():
        raise VersionError(
            f"Layer '{layer_id}' has no bundled version; bundled layers are "
            f"{', '.join(bundled_layer_ids())}."
        )
