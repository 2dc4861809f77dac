"""Atomic file writing with the user's permissions (shared by every writer).

A writer gets a temporary path next to the destination and the file is moved into place
with :func:`os.replace` only when writing succeeded, so a failed write never leaves a
half-written file. The temporary file is created like any file the user makes: mode 0666
masked by the process umask (``tempfile.mkstemp`` would make it 0600, private to the user).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from geo.errors import ExportError

__all__ = ["atomic_target", "pid_alive"]

logger = logging.getLogger(__name__)


def _fresh_name(final: Path) -> Path:
    return final.with_name(f".{final.stem}.{secrets.token_hex(6)}.part{final.suffix}")


@contextmanager
def atomic_target(path: str | os.PathLike[str], *, create: bool = True) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    Parameters
    ----------
    path
        Destination file; its folder is created when missing.
    create
        ``True`` creates the (empty) temporary file, mode ``0666 & ~umask``; ``False``
        hands over a name that does not exist yet (for GDAL drivers that create it).

    Raises
    ------
    ExportError
        If the folder or the file cannot be written (the message names the path).
    """
    final = Path(path)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"Cannot create the folder {final.parent}: {exc.strerror}.") from exc
    if final.is_dir():
        raise ExportError(f"Cannot write {final}: it is a folder; expected a file name.")
    tmp = _fresh_name(final)
    if create:
        try:
            os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
        except OSError as exc:
            raise ExportError(f"Cannot write in {final.parent}: {exc.strerror}.") from exc
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        raise ExportError(f"Cannot write {final}: {exc.strerror or exc}.") from exc
    finally:
        tmp.unlink(missing_ok=True)
    logger.debug("wrote %s", final)


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (the owner of a temporary file,
    lock or job left behind; a process of another user counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
