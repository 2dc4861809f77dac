"""Service settings, read from ``BASINWATCH_*`` environment variables (or a ``.env`` file).

=========================  ==========================================================
``BASINWATCH_DATABASE_URL``  ``postgresql+psycopg://user@host:5432/db`` for PostGIS; a
                             ``.gpkg`` path; unset = ``DATA_DIR/basinwatch.gpkg``
``BASINWATCH_DATA_DIR``      directory of the embedded store (default ``./basinwatch-data``)
``BASINWATCH_API_KEYS``      JSON object key -> role (``reader`` | ``editor``), e.g.
                             ``{"a-long-random-key-1234": "editor"}``
``BASINWATCH_READ_OPEN``     ``true`` (default): reads need no key; ``false``: any key
``BASINWATCH_MAX_LIMIT``     largest ``limit`` of an items page (default 10000)
``BASINWATCH_MAX_UPLOAD_MB`` largest registry upload (default 200)
=========================  ==========================================================
"""

from __future__ import annotations

import logging
from enum import StrEnum
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Role", "Settings", "get_settings", "layers_root"]

log = logging.getLogger(__name__)

_DEV_SECRETS = {"changeme", "change-me", "secret", "password", "editor", "test", "dev"}
MIN_KEY_LENGTH = 16


class Role(StrEnum):
    """What an API key may do."""

    reader = "reader"
    editor = "editor"


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
    api_keys: dict[str, Role] = Field(default_factory=dict)
    read_open: bool = True
    max_limit: int = Field(default=10_000, ge=1)
    default_limit: int = Field(default=100, ge=1)
    max_upload_mb: int = Field(default=200, ge=1)
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

    @property
    def online_tile_ids(self) -> tuple[str, ...]:
        """``online_tiles`` as a tuple of ids."""
        return tuple(t.strip().lower() for t in self.online_tiles.split(",") if t.strip())

    @field_validator("api_keys")
    @classmethod
    def _no_dev_secrets(cls, keys: dict[str, Role]) -> dict[str, Role]:
        for key in keys:
            if key.lower() in _DEV_SECRETS or len(key) < MIN_KEY_LENGTH:
                raise ValueError(
                    f"BASINWATCH_API_KEYS: key '{key[:4]}…' is too weak; use at least "
                    f"{MIN_KEY_LENGTH} random characters (e.g. `openssl rand -hex 24`)."
                )
        return keys


def layers_root(settings: Settings) -> Path:
    """Where imported layer versions live for these settings (``layers.versions`` root)."""
    return settings.layers_dir or settings.data_dir / "layers"


def get_settings() -> Settings:
    """Settings from the environment."""
    return Settings()
