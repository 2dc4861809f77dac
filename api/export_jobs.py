"""Export jobs: the enforcement list written in a background thread, with progress.

The Excel writer used to be openpyxl: a minute of pure-Python work per 100k rows, so jobs
ran in a spawned child process to keep the server answering. The writer is now
XlsxWriter + pyarrow (:mod:`geo.xlsx`): most of its time is in Arrow kernels and zlib,
which release the interpreter lock, and a spawned child's start (importing pandas,
geopandas, pyarrow: 2 s on a quiet machine, over 15 s on a loaded one) cost more than
writing a basin. A job is therefore a thread of the server: it writes the file into a
temporary folder and reports rows written (after each chunk of rows); the server answers
progress polls and, when done, streams the file from disk (``FileResponse``) with its
Chinese file name, and gives the memory of the export back to the system
(:func:`api.memory.release_memory`). Finished files are deleted after download or after
:data:`KEEP_S` seconds.

Also here: the Chinese description of an export's filters and area (the file name parts and
the rows of the 说明 sheet).
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd

from api.memory import release_memory
from geo.errors import ExportError, GeoError

__all__ = ["ExportJob", "start_job", "get_job", "describe_filters", "KEEP_S", "MAX_JOBS"]

log = logging.getLogger(__name__)

#: Seconds a finished file is kept for download.
KEEP_S = 600
#: Jobs running at once (each is a thread); more are refused with 429.
MAX_JOBS = 2


class ExportBusyError(GeoError, RuntimeError):
    """Too many exports running: a limit, answered 429 with ``Retry-After``."""

    http_status = 429
    ogc_code = "TooManyRequests"
    retry_after = 5


@dataclasses.dataclass
class _Count:
    """Rows written so far (set by the writing thread, read by progress polls)."""

    value: int = 0


@dataclasses.dataclass
class ExportJob:
    """One export: its state and, when done, the file."""

    id: str
    fmt: str
    filename: str
    total: int
    folder: Path
    done: _Count
    thread: threading.Thread | None = None
    state: str = "running"
    error: str | None = None
    path: Path | None = None
    started: float = dataclasses.field(default_factory=time.monotonic)
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready progress."""
        elapsed = (self.finished or time.monotonic()) - self.started
        return {"id": self.id, "state": self.state, "format": self.fmt,
                "filename": self.filename, "total": self.total,
                "done": int(self.done.value) if self.state != "done" else self.total,
                "seconds": round(elapsed, 2), "error": self.error}


_JOBS: dict[str, ExportJob] = {}
_LOCK = threading.Lock()


def _write(job: ExportJob, frame: gpd.GeoDataFrame, target: Path,
           notes: list[tuple[str, str]], provenance: Any) -> None:
    """Write the file (in the job's thread) and record how it ended."""
    try:
        from geo.export import export, write_xlsx

        if job.fmt == "xlsx":
            def progress(written: int, total: int) -> None:
                job.done.value = int(written * job.total / max(total, 1))

            write_xlsx(frame, target, notes=notes, progress=progress, provenance=provenance)
        else:
            export(frame, job.fmt, target, provenance=provenance)
        job.done.value = job.total
        job.path, job.state = target, "done"
        log.info("export job %s: %d rows %s in %.1f s", job.id, job.total, job.fmt,
                 time.monotonic() - job.started)
    except Exception as exc:  # reported through the job's state
        job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        log.error("export job %s failed: %s", job.id, job.error)
    finally:
        job.finished = time.monotonic()
        del frame
        release_memory()


def _expire() -> None:
    now = time.monotonic()
    for jid, job in list(_JOBS.items()):
        if job.finished is not None and now - job.finished > KEEP_S:
            shutil.rmtree(job.folder, ignore_errors=True)
            _JOBS.pop(jid, None)


def start_job(frame: gpd.GeoDataFrame, fmt: str, filename: str,
              notes: list[tuple[str, str]], *, provenance: Any = None) -> ExportJob:
    """Start writing ``frame`` as ``fmt`` in a background thread; return the job at once.

    Raises
    ------
    ExportBusyError
        If :data:`MAX_JOBS` exports are already running.
    """
    from api.routers.exports import MEDIA_TYPES

    with _LOCK:
        _expire()
        running = sum(1 for j in _JOBS.values() if j.state == "running")
        if running >= MAX_JOBS:
            raise ExportBusyError(f"{running} exports are running; try again when one is done "
                                  f"(at most {MAX_JOBS} at once).")
        folder = Path(tempfile.mkdtemp(prefix="basinwatch-job-"))
        target = folder / f"enforcement_list{MEDIA_TYPES[fmt][1]}"
        job = ExportJob(id=uuid.uuid4().hex, fmt=fmt, filename=filename, total=len(frame),
                        folder=folder, done=_Count())
        job.thread = threading.Thread(target=_write, name=f"export-{job.id[:8]}", daemon=True,
                                      args=(job, frame, target, notes, provenance))
        _JOBS[job.id] = job
    job.thread.start()
    return job


def get_job(job_id: str) -> ExportJob:
    """The job with that id.

    Raises
    ------
    ExportError
        (404) If there is no such job (or it expired).
    """
    job = _JOBS.get(job_id)
    if job is None:
        err = ExportError(f"export job '{job_id}' not found (finished files are kept "
                          f"{KEEP_S // 60} minutes).")
        err.http_status = 404
        raise err
    return job


def forget(job: ExportJob) -> None:
    """Delete a job's files (after its download)."""
    shutil.rmtree(job.folder, ignore_errors=True)
    _JOBS.pop(job.id, None)


# --------------------------------------------------------------------------- naming


def describe_filters(params: Mapping[str, str], *, area_label: str | None = None,
                     within: bool = False) -> list[tuple[str, str]]:
    """The filters and area of an export in Chinese: ``[(项目, 内容), ...]``.

    ``params`` are the request's enterprise filters (``verdict=shutdown,rectify``,
    ``industry_id=dyeing``, ``basin_id=lianjiang``, ``district_code=445106``, ``filter``
    CQL2 text, ...). Known ids become their Chinese names (rules catalog, industries,
    labels.toml zones and columns).
    """
    from layers.catalog import industries, read_data_toml, rules

    labels = read_data_toml("labels.toml")
    columns, zones, words = labels["columns"], labels["zones"], labels["words"]
    verdicts = {v.id: v.label_zh for v in rules().verdicts}
    inds = {i.id: i.name_zh for i in industries()}
    rows: list[tuple[str, str]] = []
    for key, raw in params.items():
        values = [v for v in str(raw).split(",") if v != ""]
        if not values:
            continue
        if key == "verdict":
            text = "、".join(verdicts.get(v, v) for v in values)
        elif key == "industry_id":
            text = "、".join(inds.get(v, v) for v in values)
        elif key in ("basin_id", "region_id"):
            text = "、".join(zones.get(v, v) for v in values)
        elif key == "needs_review":
            text = "、".join(words.get("yes", "是") if v.lower() in ("true", "1", "yes")
                            else words.get("no", "否") for v in values)
        elif key == "filter":
            text = str(raw)
        else:
            text = "、".join(values)
        own = {"filter": "筛选条件（CQL2）", "industry_id": "行业"}
        name = own.get(key) or columns.get(key, key)
        rows.append((name, text))
    if area_label or within:
        rows.append(("区域", area_label or "绘制区域"))
    if not rows:
        rows.append(("筛选条件", "全部企业（未筛选）"))
    return rows
