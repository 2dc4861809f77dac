"""A small pool of geometry worker processes with time limits and cancellation.

Repairing a hostile polygon (``make_valid``) can take minutes and gigabytes, and GEOS
cannot be interrupted inside a thread. The work therefore runs in
:mod:`api._geometry_worker` processes (address space capped, lower CPU priority); the
calling thread waits at most ``timeout_s`` (including the wait for a free worker) and
kills the worker when the time is up or the request's client has gone away. A killed worker
is replaced by a fresh one on next use.
"""

from __future__ import annotations

import logging
import os
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from api.limits import GeometryTooComplexError, TooManyRequestsError
from geo.errors import GeoError

__all__ = ["GeometryWorkers", "WorkerCancelled"]

log = logging.getLogger(__name__)

_HEAD = struct.Struct("<I")
_POLL_S = 0.05


class WorkerCancelled(GeoError):  # noqa: N818 - control flow, the client is gone
    """The request's client went away; the work was stopped (the answer reaches no one)."""

    http_status = 400
    ogc_code = "ClientClosedRequest"
    default_msg = "The client closed the connection; the geometry work was stopped."


class _Worker:
    def __init__(self, memory_mb: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "api._geometry_worker", str(memory_mb)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            bufsize=0,  # nothing else: CPython then spawns with vfork (no copy of the server)
        )
        self.ready = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait for the worker's ready byte (its imports done); not part of a time limit."""
        if self.ready:
            return
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready or os.read(self.proc.stdout.fileno(), 1) != b"R":
            raise GeometryTooComplexError("geometry worker did not start; retry shortly.")
        self.ready = True

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL does not fail
            log.error("geometry worker %d did not exit", self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                stream.close()


class GeometryWorkers:
    """Run geometry repairs in worker processes.

    Parameters
    ----------
    size
        Number of worker processes (started lazily, replaced after a kill).
    timeout_s
        Wall-clock limit per call, including waiting for a free worker.
    memory_mb
        Address-space limit of each worker.
    """

    def __init__(self, size: int, timeout_s: float, memory_mb: int) -> None:
        self.size = size
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._idle: queue.Queue[_Worker | None] = queue.Queue()
        for _ in range(size):
            self._idle.put(None)  # a slot; the process starts on first use
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self.killed = 0  # workers killed for time or cancellation (for tests and logs)

    def start(self) -> None:
        """Start the worker processes now (the first request then does not wait)."""
        slots = []
        for _ in range(self.size):
            try:
                slots.append(self._idle.get_nowait())
            except queue.Empty:
                break
        started = [w if w is not None and w.alive() else self._spawn() for w in slots]
        try:
            for w in started:
                w.wait_ready()
        finally:
            for w in started:
                self._idle.put(w)

    def _spawn(self) -> _Worker:
        w = _Worker(self.memory_mb)
        with self._lock:
            self._all.add(w)
        return w

    def _retire(self, w: _Worker) -> None:
        w.kill()
        with self._lock:
            self._all.discard(w)

    def repair(self, wkbs: Sequence[bytes], *, cancelled: object = None,
               what: str = "within") -> bytes:
        """WKB of the valid union of ``wkbs`` (see :func:`api._geometry_worker.repair`).

        Raises
        ------
        GeometryTooComplexError
            Time or memory limit exceeded, or GEOS failed on the input.
        TooManyRequestsError
            No worker became free within the time limit.
        WorkerCancelled
            ``cancelled()`` became true (the client went away).
        """
        try:
            w = self._idle.get(timeout=self.timeout_s)
        except queue.Empty:
            raise TooManyRequestsError(
                f"{what}: all {self.size} geometry workers (BASINWATCH_GEOMETRY_WORKERS) are "
                "busy repairing polygons; retry shortly.", retry_after=self.timeout_s,
            ) from None
        try:
            if w is None or not w.alive():
                w = self._spawn()
            w.wait_ready()  # a fresh worker's start-up does not count against the limit
            deadline = time.monotonic() + self.timeout_s
            payload = self._call(w, wkbs, deadline, cancelled, what)
        except BaseException:
            if w is not None:
                self._retire(w)
            self._idle.put(None)
            raise
        self._idle.put(w)
        return payload

    def _call(self, w: _Worker, wkbs: Sequence[bytes], deadline: float, cancelled: object,
              what: str) -> bytes:
        assert w.proc.stdin is not None and w.proc.stdout is not None
        frame = b"r" + _HEAD.pack(len(wkbs)) + b"".join(_HEAD.pack(len(b)) + b for b in wkbs)
        w.proc.stdin.write(frame)
        w.proc.stdin.flush()
        out = w.proc.stdout
        buf = b""
        while True:
            if cancelled is not None and cancelled():  # type: ignore[operator]
                self.killed += 1
                raise WorkerCancelled()
            left = deadline - time.monotonic()
            if left <= 0:
                self.killed += 1
                raise GeometryTooComplexError(
                    f"{what}: repairing the polygon took longer than "
                    f"BASINWATCH_GEOMETRY_TIMEOUT_S={self.timeout_s:g} s; send a valid "
                    "(non-self-intersecting) polygon or fewer vertices."
                )
            ready, _, _ = select.select([out], [], [], min(_POLL_S, left))
            if not ready:
                continue
            chunk = os.read(out.fileno(), 1 << 20)
            if not chunk:
                raise GeometryTooComplexError(
                    f"{what}: the geometry worker died repairing the polygon (more than "
                    f"BASINWATCH_GEOMETRY_MEMORY_MB={self.memory_mb} MB?)."
                )
            buf += chunk
            if len(buf) >= 5:
                (n,) = _HEAD.unpack(buf[1:5])
                if len(buf) >= 5 + n:
                    status, body = buf[:1], buf[5:5 + n]
                    if status == b"0":
                        return body
                    reason = body.decode("utf-8", "replace")
                    if reason == "memory" or "bad_alloc" in reason:
                        reason = (f"more than BASINWATCH_GEOMETRY_MEMORY_MB={self.memory_mb} "
                                  "MB")
                    raise GeometryTooComplexError(f"{what}: the polygon cannot be repaired "
                                                  f"({reason}).")

    def close(self) -> None:
        """Kill every worker process."""
        with self._lock:
            workers = list(self._all)
            self._all.clear()
        for w in workers:
            w.kill()
