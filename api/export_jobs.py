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
:data:`KEEP_S` seconds. A job's folder (file and ``job.json`` state) is under the server's
data folder (:func:`jobs_root`), so every worker of ``basinwatch serve --workers N`` can
answer its polls and its download.

Also here: the Chinese description of an export's filters and area (the file name parts and
the rows of the 说明 sheet).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import geopandas as gpd

from api.memory import release_memory
from geo.errors import ExportError, GeoError
from geo.files import pid_alive

__all__ = ["ExportJob", "start_job", "get_job", "jobs_root", "describe_filters", "KEEP_S",
           "MAX_JOBS"]

log = logging.getLogger(__name__)

#: Seconds a finished file is kept for download.
KEEP_S = 600
#: Jobs running at once in one server process (each is a thread); more are refused with 429.
MAX_JOBS = 2
#: A job id (uuid4 hex): anything else is never looked up on disk.
_JOB_ID = re.compile(r"[0-9a-f]{32}")


class ExportBusyError(GeoError, RuntimeError):
    """Too many exports running: a limit, answered 429 with ``Retry-After``."""

    http_status = 429
    ogc_code = "TooManyRequests"
    retry_after = 5


@dataclasses.dataclass
class ExportJob:
    """One export: its state and, when done, the file.

    The state lives in ``<folder>/job.json`` as well as here, so a server started with
    ``--workers N`` answers a poll or a download on whichever worker gets it: a worker that
    did not start the job reads the file (:func:`get_job`)."""

    id: str
    fmt: str
    filename: str
    total: int
    folder: Path
    done: int = 0
    state: str = "running"
    error: str | None = None
    path: Path | None = None
    pid: int = dataclasses.field(default_factory=os.getpid)
    started: float = dataclasses.field(default_factory=time.time)
    finished: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready progress."""
        elapsed = (self.finished or time.time()) - self.started
        return {"id": self.id, "state": self.state, "format": self.fmt,
                "filename": self.filename, "total": self.total,
                "done": int(self.done) if self.state != "done" else self.total,
                "seconds": round(elapsed, 2), "error": self.error}

    def save(self) -> None:
        """Write the state file atomically (a reader never sees half a file)."""
        record = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        record["folder"] = str(self.folder)
        record["path"] = None if self.path is None else str(self.path)
        tmp = self.folder / f".{STATE_FILE}.{threading.get_ident()}"
        tmp.write_text(json.dumps(record), encoding="utf-8")
        os.replace(tmp, self.folder / STATE_FILE)

    @classmethod
    def read(cls, folder: Path) -> ExportJob | None:
        """The job whose state file is in ``folder`` (``None`` when there is none)."""
        try:
            record = json.loads((folder / STATE_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        try:  # a file of another version or a damaged one: no such job, not a 500
            record["folder"] = Path(record["folder"])
            record["path"] = None if record["path"] is None else Path(record["path"])
            job = cls(**record)
        except (KeyError, TypeError):
            log.warning("export job state %s is unreadable; ignored", folder / STATE_FILE)
            return None
        if job.state == "running" and not pid_alive(job.pid):
            job.state, job.error = "failed", "the server process writing it stopped"
        return job


#: Name of a job's state file in its folder.
STATE_FILE = "job.json"
_JOBS: dict[str, ExportJob] = {}  # jobs this process is writing
_LOCK = threading.Lock()


def jobs_root(data_dir: Path) -> Path:
    """The folder of export jobs of a server whose data folder is ``data_dir``."""
    return Path(data_dir) / "export-jobs"


def _write(job: ExportJob, frame: gpd.GeoDataFrame, target: Path,
           notes: list[tuple[str, str]], provenance: Any) -> None:
    """Write the file (in the job's thread) and record how it ended."""
    try:
        from geo.export import export, write_xlsx

        if job.fmt == "xlsx":
            def progress(written: int, total: int) -> None:
                job.done = int(written * job.total / max(total, 1))
                job.save()

            write_xlsx(frame, target, notes=notes, progress=progress, provenance=provenance)
        else:
            export(frame, job.fmt, target, provenance=provenance)
        job.done = job.total
        job.path, job.state = target, "done"
        log.info("export job %s: %d rows %s in %.1f s", job.id, job.total, job.fmt,
                 time.time() - job.started)
    except Exception as exc:  # reported through the job's state
        job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
        log.error("export job %s failed: %s", job.id, job.error)
    finally:
        job.finished = time.time()
        job.save()
        with _LOCK:
            _JOBS.pop(job.id, None)
        del frame
        release_memory()


def _expire(root: Path) -> None:
    """Delete finished jobs older than :data:`KEEP_S` (any worker's)."""
    now = time.time()
    for folder in root.glob("*/"):
        job = ExportJob.read(folder)
        if job is not None and job.finished is not None and now - job.finished > KEEP_S:
            shutil.rmtree(folder, ignore_errors=True)


def start_job(frame: gpd.GeoDataFrame, fmt: str, filename: str,
              notes: list[tuple[str, str]], *, root: Path,
              provenance: Any = None) -> ExportJob:
    """Start writing ``frame`` as ``fmt`` in a background thread; return the job at once.

    ``root`` is the server's jobs folder (:func:`jobs_root`), shared by its workers.

    Raises
    ------
    ExportBusyError
        If :data:`MAX_JOBS` exports are already running in this process.
    """
    from api.routers.exports import MEDIA_TYPES

    root.mkdir(parents=True, exist_ok=True)
    with _LOCK:
        _expire(root)
        running = len(_JOBS)
        if running >= MAX_JOBS:
            raise ExportBusyError(f"{running} exports are running; try again when one is done "
                                  f"(at most {MAX_JOBS} at once).")
        job_id = uuid.uuid4().hex
        folder = root / job_id
        folder.mkdir()
        target = folder / f"enforcement_list{MEDIA_TYPES[fmt][1]}"
        job = ExportJob(id=job_id, fmt=fmt, filename=filename, total=len(frame), folder=folder)
        job.save()
        _JOBS[job.id] = job
    thread = threading.Thread(target=_write, name=f"export-{job.id[:8]}", daemon=True,
                              args=(job, frame, target, notes, provenance))
    thread.start()
    return job


def get_job(job_id: str, *, root: Path) -> ExportJob:
    """The job with that id, started by this process or by another worker of the server.

    Raises
    ------
    ExportError
        (404) If there is no such job (or it expired).
    """
    job = _JOBS.get(job_id)
    if job is None and _JOB_ID.fullmatch(job_id):
        job = ExportJob.read(root / job_id)
    if job is None:
        err = ExportError(f"export job '{job_id}' not found (finished files are kept "
                          f"{KEEP_S // 60} minutes).")
        err.http_status = 404
        raise err
    return job


def forget(job: ExportJob) -> None:
    """Delete a job's files (after its download)."""
    shutil.rmtree(job.folder, ignore_errors=True)


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
