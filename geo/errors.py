"""Exception hierarchy of the engine.

Every error BasinWatch raises derives from :class:`GeoError`. Each subclass also inherits
the fitting builtin (so ``except ValueError`` still works), carries the HTTP status the API
maps it to, and a user-facing message that says what was expected and how to fix it.
``api/`` maps the whole hierarchy to responses in one exception handler.
"""

from __future__ import annotations

__all__ = [
    "GeoError",
    "RegistryError",
    "MissingColumnError",
    "RegistryFormatError",
    "UnknownCRSError",
    "CRSMismatchError",
    "LayerNotFoundError",
    "ReferenceDataError",
    "GeocodeError",
    "ExportError",
    "InvalidQueryError",
    "RasterError",
    "ConcurrentWriteError",
]


class GeoError(Exception):
    """Root of BasinWatch's errors."""

    http_status: int = 500
    default_msg: str = "BasinWatch could not complete the request."

    def __init__(self, msg: str | None = None) -> None:
        self.msg = msg or self.default_msg
        super().__init__(self.msg)


class RegistryError(GeoError, ValueError):
    """The registry file as a whole cannot be read."""

    http_status = 422
    default_msg = "The registry file cannot be read."


class MissingColumnError(RegistryError):
    """A required column is absent from the registry."""

    #: At most this many found column names are quoted in the message.
    max_found = 20

    def __init__(self, column: str, accepted: tuple[str, ...], found: list[str]) -> None:
        self.column = column
        shown = [str(f) for f in found[: self.max_found]]
        if len(found) > self.max_found:
            shown.append(f"… ({len(found) - self.max_found} more)")
        super().__init__(
            f"Registry has no column for '{column}': expected one of {', '.join(accepted)}; "
            f"found columns {', '.join(shown) or '(none)'}."
        )


class RegistryFormatError(RegistryError):
    """The file is not a CSV/XLSX registry BasinWatch can parse."""


class UnknownCRSError(GeoError, ValueError):
    """A coordinate-system name is not one of the supported four."""

    http_status = 422

    def __init__(self, value: str) -> None:
        self.value = value
        super().__init__(
            f"Unknown coordinate system '{value}': expected WGS84 (default), CGCS2000, "
            "GCJ02 or BD09."
        )


class CRSMismatchError(GeoError, ValueError):
    """Two frames meant to be joined have different or missing CRS."""

    http_status = 422
    default_msg = "Both inputs must share a CRS: call .to_crs('EPSG:4326') on the other one."


class LayerNotFoundError(GeoError, KeyError):
    """No reference layer with that id."""

    http_status = 404

    def __init__(self, layer_id: str, known: list[str]) -> None:
        self.layer_id = layer_id
        super().__init__(f"No layer '{layer_id}': known layers are {', '.join(known)}.")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.msg


class ReferenceDataError(GeoError, RuntimeError):
    """A bundled reference data file (layer, catalog) is missing or malformed."""

    default_msg = "A reference data file is missing or malformed; reinstall BasinWatch."


class GeocodeError(GeoError, ValueError):
    """A geocoding provider failed or was misconfigured."""

    http_status = 422


class ExportError(GeoError, ValueError):
    """An export format or destination is not usable."""

    http_status = 422


class InvalidQueryError(GeoError, ValueError):
    """A query parameter (bbox, filter, point, ...) is malformed."""

    http_status = 400


class RasterError(GeoError, ValueError):
    """A raster product cannot be built, read or summarised with the given inputs."""

    http_status = 422
    default_msg = "The raster cannot be built from these inputs."


class ConcurrentWriteError(GeoError, RuntimeError):
    """The stored list changed while a write that read it was under way."""

    http_status = 409
    default_msg = ("The stored list changed while this write was under way (another load or "
                   "classification finished first); nothing was written. Run it again.")
