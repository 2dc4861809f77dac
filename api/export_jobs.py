"""Export jobs: the enforcement list written in a child process, with progress.

An Excel workbook of 100k rows takes openpyxl tens of seconds of pure-Python work. Written
inside the server it held the interpreter lock (other map requests stalled) and left the
worker's memory high afterwards. A job instead hands the selected rows to a *spawned* child
process, which writes the file and reports rows written through a shared counter; the
server only answers progress polls and, when done, streams the file from disk
(``FileResponse``, chunked) with its Chinese file name. The child exits after one file, so
its memory goes back to the system. Finished files are deleted after download or after
:data:`KEEP_S` seconds.

Also here: the Chinese description of an export's filters and area (the file name parts and
the rows of the 说明 sheet).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd

from geo.errors import ExportError, GeoError

__all__ = ["ExportJob", "start_job", "get_job", "describe_filters", "KEEP_S", "MAX_JOBS"]

log = logging.getLogger(__name__)

#: Seconds a finished file is kept for download.
KEEP_S = 600
#: Jobs running at once (each is a process); more are refused with 503.
MAX_JOBS = 2


class ExportBusyError(GeoError, RuntimeError):
    """Too many exports running: a limit, answered 429 with ``Retry-After``."""

    http_status = 429
    ogc_code = "TooManyRequests"
    retry_after = 5


@dataclasses.dataclass
class ExportJob:
    """One export: its state and, when done, the file."""

    id: str
    fmt: str
    filename: str
    total: int
    folder: Path
    done: Any  # multiprocessing.Value('q')
    process: Any = None
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


def _child(frame: gpd.GeoDataFrame, fmt: str, path: str, notes: list[tuple[str, str]],
           provenance: Any, done: Any, errors: Any) -> None:  # pragma: no cover - child

    """Write the file (in the spawned child)."""
    try:
        from geo.export import export, write_xlsx

        if fmt == "xlsx":
            def progress(written: int, total: int) -> None:
                done.value = int(written * len(frame) / max(total, 1))

            write_xlsx(frame, path, notes=notes, progress=progress, provenance=provenance)
        else:
            export(frame, fmt, path, provenance=provenance)
        done.value = len(frame)
    except Exception as exc:  # reported to the parent through the error queue
        errors.put(f"{type(exc).__name__}: {exc}")
        raise


def _watch(job: ExportJob, errors: Any, target: Path) -> None:
    job.process.join()
    job.finished = time.monotonic()
    if job.process.exitcode == 0 and target.is_file():
        job.path, job.state = target, "done"
        log.info("export job %s: %d rows %s in %.1f s", job.id, job.total, job.fmt,
                 job.finished - job.started)
    else:
        job.state = "failed"
        job.error = errors.get() if not errors.empty() else f"exit code {job.process.exitcode}"
        log.error("export job %s failed: %s", job.id, job.error)


def _expire() -> None:
    now = time.monotonic()
    for jid, job in list(_JOBS.items()):
        if job.finished is not None and now - job.finished > KEEP_S:
            shutil.rmtree(job.folder, ignore_errors=True)
            _JOBS.pop(jid, None)


def start_job(frame: gpd.GeoDataFrame, fmt: str, filename: str,
              notes: list[tuple[str, str]], *, provenance: Any = None) -> ExportJob:
    """Start writing ``frame`` as ``fmt`` in a child process; return the job at once.

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
        ctx = mp.get_context("spawn")
        folder = Path(tempfile.mkdtemp(prefix="basinwatch-job-"))
        target = folder / f"enforcement_list{MEDIA_TYPES[fmt][1]}"
        job = ExportJob(id=uuid.uuid4().hex, fmt=fmt, filename=filename, total=len(frame),
                        folder=folder, done=ctx.Value("q", 0))
        errors = ctx.Queue()
        job.process = ctx.Process(target=_child, daemon=True,
                                  args=(frame, fmt, str(target), notes, provenance, job.done,
                                        errors))
        job.process.start()
        _JOBS[job.id] = job
    threading.Thread(target=_watch, args=(job, errors, target), daemon=True).start()
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
