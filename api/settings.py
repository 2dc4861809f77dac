"""Service settings, read from ``BASINWATCH_*`` environment variables (or a ``.env`` file).

Storage and access:

==============================  ===========================================================
``BASINWATCH_DATABASE_URL``     ``postgresql+psycopg://user@host:5432/db`` for PostGIS; a
                                ``.gpkg`` path; unset = ``DATA_DIR/basinwatch.gpkg``
``BASINWATCH_DATA_DIR``         directory of the embedded store (default ``./basinwatch-data``)
``BASINWATCH_API_KEYS``         JSON object: key, or its hash ``sha256:<hex>`` (``basinwatch
                                hash-key``), -> role (``viewer`` | ``editor`` | ``admin``) or
                                ``{"role": "editor", "name": "alice"}``
``BASINWATCH_READ_OPEN``        ``true`` (default): reads need no key; ``false``: a key or a
                                browser session (``/session/login``)
``BASINWATCH_SESSION_SECRET``   signs browser session cookies (default: generated once and
                                kept in ``DATA_DIR/.session-secret``)
``BASINWATCH_SESSION_TTL_S``    lifetime of a browser session (default 8 h)
``BASINWATCH_BASE_URL``         public URL of the service, used for every link (else the
                                Host header if it is one of ``TRUSTED_HOSTS``, else the
                                address the server listens on)
``BASINWATCH_TRUSTED_HOSTS``    JSON list of Host header values trusted for links
``BASINWATCH_CORS_ORIGINS``     JSON list of origins allowed to call the API from a browser
                                (default none: CORS closed)
``BASINWATCH_CONTENT_SECURITY_POLICY``  replaces the default policy (see :mod:`api.security`)
==============================  ===========================================================

Limits: every field of ``layers/data/service_limits.toml`` (``max_upload_mb``,
``max_vertices``, ``geometry_timeout_s``, ``rate_limit_per_minute`` ...) is a setting of the
same name, defaulting to the value in that file.
"""

from __future__ import annotations

import hashlib
import logging
import re
from enum import StrEnum
from functools import cache, cached_property
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "Role",
    "KeyGrant",
    "Settings",
    "get_settings",
    "hash_key",
    "is_key_hash",
    "limit_defaults",
    "MIN_KEY_LENGTH",
    "layers_root",
]

log = logging.getLogger(__name__)

_DEV_SECRETS = {"changeme", "change-me", "secret", "password", "editor", "test", "dev"}
MIN_KEY_LENGTH = 16
_HASH_RE = re.compile(r"^sha256:[0-9a-f]{64}$")


class Role(StrEnum):
    """What an API key may do; each role includes the ones before it."""

    viewer = "viewer"
    editor = "editor"
    admin = "admin"

    @property
    def rank(self) -> int:
        """0 viewer, 1 editor, 2 admin."""
        return list(Role).index(self)

    def allows(self, needed: Role) -> bool:
        """Whether this role may do what ``needed`` may."""
        return self.rank >= needed.rank

    @classmethod
    def _missing_(cls, value: object) -> Role | None:
        # "reader" was the viewer role's name before roles were three
        return cls.viewer if str(value).lower() == "reader" else None


class KeyGrant(BaseModel):
    """What one configured key grants."""

    role: Role
    name: str | None = Field(default=None, max_length=64,
                             description="shown in load history and the audit log")


def hash_key(key: str) -> str:
    """``sha256:<hex>`` of an API key (what ``BASINWATCH_API_KEYS`` may store instead).

    API keys are long random strings, so one SHA-256 is enough (as for GitHub or Stripe
    tokens): a slow password hash would protect nothing more and cost CPU per request.
    """
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def is_key_hash(text: str) -> bool:
    """Whether ``text`` is a ``sha256:<64 hex>`` key hash."""
    return bool(_HASH_RE.match(text))


def check_key_strength(key: str) -> None:
    """Raise ValueError for a key shorter than :data:`MIN_KEY_LENGTH` or a known dev secret."""
    if key.lower() in _DEV_SECRETS or len(key) < MIN_KEY_LENGTH:
        raise ValueError(
            f"key '{key[:2]}…' is too weak; use at least {MIN_KEY_LENGTH} random characters "
            "(e.g. `openssl rand -hex 24`)."
        )


@cache
def limit_defaults() -> dict[str, Any]:
    """The ``[limits]`` table of ``layers/data/service_limits.toml``."""
    from layers.catalog import read_data_toml

    return dict(read_data_toml("service_limits.toml")["limits"])


def _limit(name: str) -> Any:
    return Field(default_factory=lambda: limit_defaults()[name],
                 description=f"see layers/data/service_limits.toml ({name})")


class Settings(BaseSettings):
    """Validated service configuration."""

    model_config = SettingsConfigDict(env_prefix="BASINWATCH_", env_file=".env",
                                      extra="ignore")

    database_url: str | None = Field(default=None, description="PostGIS URL or .gpkg path")
    data_dir: Path = Field(default=Path("basinwatch-data"))
    layers_dir: Path | None = Field(
        default=None,
        description="Versions of imported reference layers (default: <data_dir>/layers)",
    )
    gzip_min_bytes: int = Field(
        default=1000, ge=0,
        description="Compress answers of at least this many bytes when the client accepts "
                    "gzip (0: never compress)",
    )
    title: str = "BasinWatch"
    tianditu_token: str | None = Field(
        default=None, description="Tianditu key; the map offers Tianditu tiles only with one"
    )
    online_tiles: str = Field(
        default="",
        description="Online base layers to offer in the map, comma-separated (osm, amap); "
                    "none by default. Enabling one accepts its provider's terms "
                    "(THIRD_PARTY_NOTICES.md)",
    )
    # -- access -----------------------------------------------------------------------------
    api_keys: dict[str, KeyGrant] = Field(default_factory=dict)
    read_open: bool = True
    session_secret: SecretStr | None = None
    session_ttl_s: int = Field(default=8 * 3600, ge=60)
    cookie_secure: bool | None = Field(
        default=None, description="Secure flag of the session cookie (default: base_url is "
                                  "https)")
    # -- links and browsers ---------------------------------------------------------------
    base_url: str | None = None
    trusted_hosts: list[str] = Field(default_factory=lambda: ["localhost", "127.0.0.1",
                                                              "[::1]"])
    cors_origins: list[str] = Field(default_factory=list)
    content_security_policy: str | None = None
    # -- paging -----------------------------------------------------------------------------
    max_limit: int = Field(default=10_000, ge=1)
    default_limit: int = Field(default=100, ge=1)
    # -- limits (defaults in layers/data/service_limits.toml) -----------------------------
    max_url_chars: int = _limit("max_url_chars")
    max_body_kb: int = _limit("max_body_kb")
    max_upload_mb: int = _limit("max_upload_mb")
    max_xlsx_uncompressed_mb: int = _limit("max_xlsx_uncompressed_mb")
    max_registry_rows: int = _limit("max_registry_rows")
    max_parallel_uploads: int = _limit("max_parallel_uploads")
    max_vertices: int = _limit("max_vertices")
    geometry_timeout_s: float = _limit("geometry_timeout_s")
    geometry_workers: int = _limit("geometry_workers")
    geometry_memory_mb: int = _limit("geometry_memory_mb")
    max_filter_chars: int = _limit("max_filter_chars")
    max_filter_terms: int = _limit("max_filter_terms")
    query_timeout_s: float = _limit("query_timeout_s")
    min_density_cell_m: float = _limit("min_density_cell_m")
    max_density_cells: int = _limit("max_density_cells")
    rate_limit_per_minute: int = _limit("rate_limit_per_minute")
    rate_limit_burst: int = _limit("rate_limit_burst")
    upload_limit_per_hour: int = _limit("upload_limit_per_hour")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _grants(cls, keys: Any) -> Any:
        if not isinstance(keys, dict):
            return keys
        return {k: ({"role": v} if isinstance(v, str | Role) else v) for k, v in keys.items()}

    @field_validator("api_keys")
    @classmethod
    def _no_dev_secrets(cls, keys: dict[str, KeyGrant]) -> dict[str, KeyGrant]:
        plain = 0
        for key in keys:
            if is_key_hash(key):
                continue
            if key.startswith("sha256:"):
                raise ValueError(f"BASINWATCH_API_KEYS: '{key[:12]}…' is not sha256:<64 hex>.")
            try:
                check_key_strength(key)
            except ValueError as exc:
                raise ValueError(f"BASINWATCH_API_KEYS: {exc}") from None
            plain += 1
        if plain:
            log.warning("%d API key(s) configured in plain text; store their hashes instead "
                        "(`basinwatch hash-key`)", plain)
        return keys

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, url: str | None) -> str | None:
        if url is None or url == "":
            return None
        if not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", url):
            raise ValueError(f"BASINWATCH_BASE_URL: expected http(s)://host[:port][/path], "
                             f"got '{url}'.")
        return url.rstrip("/")

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for o in origins:
            if o != "*" and not re.match(r"^https?://[^/\s]+$", o):
                raise ValueError(f"BASINWATCH_CORS_ORIGINS: expected scheme://host[:port], "
                                 f"got '{o}'.")
        return origins

    @model_validator(mode="after")
    def _positive_limits(self) -> Settings:
        for name in limit_defaults():
            value = getattr(self, name)
            if value < 0 or (value == 0 and not name.startswith(("rate_", "upload_limit"))):
                raise ValueError(f"BASINWATCH_{name.upper()}: expected a positive number, "
                                 f"got {value}.")
        if self.default_limit > self.max_limit:
            raise ValueError("BASINWATCH_DEFAULT_LIMIT must not exceed BASINWATCH_MAX_LIMIT.")
        return self

    @property
    def online_tile_ids(self) -> tuple[str, ...]:
        """``online_tiles`` as a tuple of ids."""
        return tuple(t.strip().lower() for t in self.online_tiles.split(",") if t.strip())

    @cached_property
    def key_hashes(self) -> dict[str, KeyGrant]:
        """Configured keys by their ``sha256:`` hash (plain keys hashed once)."""
        return {(k if is_key_hash(k) else hash_key(k)): g for k, g in self.api_keys.items()}


def layers_root(settings: Settings) -> Path:
    """Where imported layer versions live for these settings (``layers.versions`` root)."""
    return settings.layers_dir or settings.data_dir / "layers"


def get_settings() -> Settings:
    """Settings from the environment."""
    return Settings()
