"""Independent output writers run side by side in forked worker processes.

``basinwatch run`` writes the same result five times (CSV, GeoJSON, Excel, GeoPackage,
map.html). Each writer holds the GIL most of its time, so threads gain ~20 %; processes
forked after the pipeline inherit its frames copy-on-write (nothing pickled, nothing read
twice) and use both cores. Each job is a zero-argument callable kept in a module-level
table that the forked workers inherit: only its index travels to the worker and only
``(path, JobStats)`` comes back, or the job's error as plain data.

Fork is used only where the platform has it and the caller asks for more than one worker
(:func:`run_jobs`); otherwise the jobs run in this process, one after the other, with the
same progress calls and results.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from geo.errors import ExportError, GeoError

__all__ = ["Job", "JobStats", "run_jobs", "fork_available", "reset_peak_rss", "peak_rss_mb"]


@dataclass(frozen=True)
class Job:
    """One writer: ``stage`` names it in progress and timings, ``rows`` it writes."""

    stage: str
    rows: int
    fn: Callable[[], Path]


@dataclass(frozen=True)
class JobStats:
    """What a job cost where it ran: wall and CPU seconds, the process's peak RSS (MB)."""

    seconds: float
    cpu_seconds: float
    peak_rss_mb: float | None
    pid: int


#: The jobs of the current :func:`run_jobs` call; forked workers inherit this table.
_JOBS: list[Job] = []


def fork_available() -> bool:
    """Whether worker processes can be forked here (POSIX; not Windows)."""
    return "fork" in multiprocessing.get_all_start_methods()


def run_jobs(
    jobs: Sequence[Job],
    *,
    workers: int = 1,
    progress: Callable[..., None] | None = None,
) -> dict[str, tuple[Path, JobStats]]:
    """Run ``jobs`` and return ``{stage: (path, stats)}``.

    Parameters
    ----------
    jobs
        The writers, longest first for the best balance (the pool takes them in order).
    workers
        Worker processes; ``1`` (or no ``fork`` on this platform) runs the jobs here.
    progress
        Called ``progress(stage, rows)`` when a job is handed out and
        ``progress(stage, rows, done=True)`` when it has finished.

    Raises
    ------
    Exception
        With one worker, the first job's own error. With more, the first error to arrive
        as :class:`geo.errors.ExportError` (a GeoError's message as it was, any other
        error's prefixed with the job and its kind); jobs not yet started are cancelled,
        each running one finishes (writers write atomically: no half file is left).
    """
    def step(stage: str, rows: int, *, done: bool = False) -> None:
        if progress is not None:
            progress(stage, rows, done=done)

    if workers <= 1 or len(jobs) <= 1 or not fork_available():
        out = {}
        for job in jobs:
            step(job.stage, job.rows)
            out[job.stage] = _measured(job, worker=False)
            step(job.stage, job.rows, done=True)
        return out
    global _JOBS
    _JOBS = list(jobs)
    try:
        ctx = multiprocessing.get_context("fork")
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=ctx,
                                 initializer=_worker_logging) as pool:
            futures = {}
            for i, job in enumerate(jobs):
                step(job.stage, job.rows)
                futures[pool.submit(_run_index, i)] = job
            out, error = {}, None
            for f in as_completed(futures):  # each job reported done as it finishes
                job = futures[f]
                if f.cancelled():
                    continue
                result = f.result()
                if isinstance(result, _Failure):
                    if error is None:  # the first failure: start no other job
                        error = result.error()
                        for other in futures:
                            other.cancel()
                    continue
                out[job.stage] = result
                step(job.stage, job.rows, done=True)
            if error is not None:
                raise error
            return out
    finally:
        _JOBS = []


def _worker_logging() -> None:
    """In a new worker: plain stderr handlers instead of the inherited ones.

    A handler's own locks (a rich console's, say) may have been held by another thread of
    the parent at the moment of the fork and would never be released in the child; a fresh
    handler cannot be.
    """
    import logging
    import sys

    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    fresh = logging.StreamHandler(sys.stderr)
    fresh.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root.addHandler(fresh)


@dataclass(frozen=True)
class _Failure:
    """A job's error as plain data: exceptions do not all survive pickling (a class whose
    ``__init__`` takes other arguments than its message cannot be rebuilt by the parent)."""

    stage: str
    kind: str
    message: str
    user_facing: bool

    def error(self) -> ExportError:
        if self.user_facing:  # a GeoError: its message is written for the user
            return ExportError(self.message)
        return ExportError(f"{self.stage}: {self.kind}: {self.message}")


def _run_index(i: int) -> tuple[Path, JobStats] | _Failure:
    """In a worker: run job ``i`` of the inherited table; an error comes back as data."""
    job = _JOBS[i]
    try:
        return _measured(job, worker=True)
    except Exception as exc:  # noqa: BLE001 - re-raised in the parent as ExportError
        return _Failure(job.stage, type(exc).__name__, str(exc), isinstance(exc, GeoError))


def _measured(job: Job, *, worker: bool) -> tuple[Path, JobStats]:
    """Run ``job``; in a worker also its peak RSS (``VmHWM`` reset at the start: it counts
    the pages still shared with the parent, so it overstates what the job added)."""
    if worker:
        reset_peak_rss()
    t, cpu = time.perf_counter(), time.process_time()
    path = job.fn()
    return path, JobStats(seconds=time.perf_counter() - t,
                          cpu_seconds=time.process_time() - cpu,
                          peak_rss_mb=peak_rss_mb() if worker else None, pid=os.getpid())


def reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS count (``VmHWM``) of this process, so the next
    :func:`peak_rss_mb` reports the peak of what runs from now on."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:  # not Linux, or not allowed: peaks then accumulate
        pass


def peak_rss_mb() -> float | None:
    """Peak resident memory (MB) of this process since :func:`reset_peak_rss`, if known."""
    try:
        status = Path("/proc/self/status").read_text(encoding="ascii")
    except OSError:
        return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None
