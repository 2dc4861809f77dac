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
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from geo.errors import ExportError, GeoError

__all__ = ["Job", "JobStats", "run_jobs", "split_jobs", "release_memory", "fork_available",
           "reset_peak_rss", "peak_rss_mb"]


@dataclass(frozen=True)
class Job:
    """One writer: ``stage`` names it in progress and timings, ``rows`` it writes."""

    stage: str
    rows: int
    fn: Callable[[], Path]
    #: Expected work (any unit shared by the jobs of a call; default ``rows``): with
    #: ``parent_too`` the jobs are split between the parent and the workers by it.
    cost: float | None = None

    @property
    def weight(self) -> float:
        """:attr:`cost`, or ``rows`` when no cost is given."""
        return float(self.rows if self.cost is None else self.cost)


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
    parent_too: bool = False,
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
    parent_too
        With more than one worker: fork ``workers - 1`` processes and let this process
        be the last worker (one process fewer holds copies of the parent's pages and its
        own buffers). The jobs are split by :attr:`Job.weight`, largest first, each to the
        side with the least work so far; the first (largest) goes to a forked worker, so
        this process keeps the lighter jobs.

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
    if parent_too:
        try:
            return _run_beside(_JOBS, workers, step)
        finally:
            _JOBS = []
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
                error = _settle(f, futures[f], futures, out, step, error)
            if error is not None:
                raise error
            return out
    finally:
        _JOBS = []


def _settle(f: Future, job: Job, futures: dict[Future, Job],
            out: dict[str, tuple[Path, JobStats]], step: Callable[..., None],
            error: ExportError | None) -> ExportError | None:
    """Take in the finished future ``f`` of ``job``: its result into ``out`` (reported
    done), or its failure, the first of which cancels the other ``futures`` (start no other
    job). Returns the first error so far."""
    if f.cancelled():
        return error
    result = f.result()
    if isinstance(result, _Failure):
        if error is None:
            error = result.error()
            for other in futures:
                other.cancel()
        return error
    out[job.stage] = result
    step(job.stage, job.rows, done=True)
    return error


def split_jobs(jobs: Sequence[Job], workers: int) -> tuple[list[int], list[int]]:
    """Positions of ``jobs`` for the forked workers and for the parent (``parent_too``).

    Largest :attr:`Job.weight` first, each to the side with the least work so far
    (the ``workers - 1`` forked processes count as one side of that many processes); ties
    go to the forked side. Each list keeps the order of ``jobs``."""
    order = sorted(range(len(jobs)), key=lambda i: -jobs[i].weight)  # stable: ties in order
    forked_n = max(workers - 1, 1)
    loads = [0.0] * forked_n
    parent_load = 0.0
    forked, parent = [], []
    for i in order:
        k = min(range(forked_n), key=loads.__getitem__)
        if loads[k] <= parent_load:
            loads[k] += jobs[i].weight
            forked.append(i)
        else:
            parent_load += jobs[i].weight
            parent.append(i)
    return sorted(forked), sorted(parent)


def _run_beside(jobs: list[Job], workers: int,
                step: Callable[..., None]) -> dict[str, tuple[Path, JobStats]]:
    """:func:`run_jobs` with ``parent_too``: forked workers and this process side by side."""
    import gc

    forked, here = split_jobs(jobs, workers)
    gc.collect()
    gc.freeze()  # the collector of a worker then leaves the inherited objects' pages alone
    release_memory()
    out: dict[str, tuple[Path, JobStats]] = {}
    error: ExportError | None = None
    ctx = multiprocessing.get_context("fork")
    try:
        with ProcessPoolExecutor(max_workers=min(max(workers - 1, 1), max(len(forked), 1)),
                                 mp_context=ctx, initializer=_worker_logging) as pool:
            futures = {}
            for i in forked:
                step(jobs[i].stage, jobs[i].rows)
                futures[pool.submit(_run_index, i)] = jobs[i]

            def collect(block: bool) -> None:
                nonlocal error
                for f in list(futures):
                    if not (block or f.done()):
                        continue
                    job = futures.pop(f)
                    error = _settle(f, job, futures, out, step, error)

            for i in here:
                if error is not None:
                    break
                job = jobs[i]
                step(job.stage, job.rows)
                try:
                    out[job.stage] = _measured(job, worker=False)
                except Exception as exc:  # noqa: BLE001 - raised below as ExportError
                    error = _Failure(job.stage, type(exc).__name__, str(exc),
                                     isinstance(exc, GeoError)).error()
                    for other in futures:
                        other.cancel()
                    break
                step(job.stage, job.rows, done=True)
                collect(block=False)
            collect(block=True)
    finally:
        gc.unfreeze()
    if error is not None:
        raise error
    return out


def release_memory() -> None:
    """Give freed heap back to the system before forking (glibc's ``malloc_trim`` and
    Arrow's pool): pages freed but kept by the allocators would otherwise be inherited and
    counted in every process."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # noqa: BLE001 - an optional saving
        pass
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


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
