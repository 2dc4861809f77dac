"""Re-check mutmut mutants quickly: import once, fork per mutant, call the test functions.

Run from a mutation work copy made by ``scripts/mutation.sh`` (it holds ``mutants/``)::

    python -P scripts/mutation_check_inproc.py tests/geo/test_x_parts.py MAP

``MAP`` has one line per mutant: ``<mutant name><TAB><regex on test function names>``
(empty regex = every test of the file). The parent imports the test module once (through
``mutants/``, so the trampolines are live); each mutant runs in a forked child with
``MUTANT_UNDER_TEST`` set, calling the matching test functions directly: ``parametrize``
is expanded, ``tmp_path`` (a temporary directory), ``monkeypatch`` and ``caplog`` (pytest's
own ``LogCaptureFixture``) are provided, and
every ``functools`` cache of the ``geo`` modules is cleared before each test (mutmut forks
from a warm process, where a cached function body never runs). Prints ``clean: passed``,
then ``<mutant>: killed`` or ``survived``. Only for test files written for it (plain
functions, those three fixtures, no conftest fixtures needed); ``mutation_check.py`` runs
pytest itself and suits any test file. Tens of times faster under load: no pytest start-up
and no re-import per mutant.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import re
import signal
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.abspath("mutants"))

import pytest  # noqa: E402


def _caches() -> list:
    out = []
    for name, mod in list(sys.modules.items()):
        if name == "geo" or name.startswith("geo."):
            out += [f for f in vars(mod).values() if callable(getattr(f, "cache_clear", None))]
    return out


def _cases(mod) -> list:
    cases = []
    for name, f in vars(mod).items():
        if not name.startswith("test_") or not callable(f):
            continue
        marks = [m for m in getattr(f, "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            cases.append((name, f, {}))
            continue
        names, values = marks[0].args[0], marks[0].args[1]
        names = [n.strip() for n in (names.split(",") if isinstance(names, str) else names)]
        for v in values:
            cases.append((name, f, dict(zip(names, v if isinstance(v, tuple) else (v,)))))
    return cases


def _run(cases: list, caches: list, rx: str) -> None:
    for name, f, kw in cases:
        if not re.search(rx, name):
            continue
        for c in caches:
            c.cache_clear()
        params = inspect.signature(f).parameters
        mp = pytest.MonkeyPatch()
        if "tmp_path" in params:
            kw = {**kw, "tmp_path": Path(tempfile.mkdtemp(prefix="bw-mutcheck-"))}
        if "monkeypatch" in params:
            kw = {**kw, "monkeypatch": mp}
        cap = _Caplog() if "caplog" in params else None
        if cap is not None:
            kw = {**kw, "caplog": cap}
        signal.alarm(60)  # a mutant that loops is killed (timeout)
        try:
            f(**kw)
        finally:
            signal.alarm(0)
            mp.undo()
            if cap is not None:
                cap.close()


class _Caplog:
    """The parts of pytest's ``caplog`` the part files use: ``records``, ``messages``,
    ``text``, ``set_level``, ``at_level``, ``clear`` (a handler on the root logger)."""

    def __init__(self) -> None:
        import logging

        from _pytest.logging import LogCaptureHandler

        self.handler = LogCaptureHandler()
        self._root = logging.getLogger()
        self._root.addHandler(self.handler)
        self._levels: list = []

    @property
    def records(self) -> list:
        return self.handler.records

    @property
    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.handler.records]

    @property
    def text(self) -> str:
        return self.handler.stream.getvalue()

    def clear(self) -> None:
        self.handler.reset()

    def set_level(self, level, logger: str | None = None) -> None:
        import logging

        lg = logging.getLogger(logger)
        self._levels.append((lg, lg.level))
        lg.setLevel(level)
        self.handler.setLevel(level)

    def at_level(self, level, logger: str | None = None):
        import contextlib

        @contextlib.contextmanager
        def ctx():
            self.set_level(level, logger)
            yield

        return ctx()

    def close(self) -> None:
        for lg, level in reversed(self._levels):
            lg.setLevel(level)
        self._root.removeHandler(self.handler)


def main(argv: list[str]) -> int:
    """Check every mutant of the map file against the test file; 1 if the clean run fails."""
    path, mapfile = argv
    spec = importlib.util.spec_from_file_location("_mutation_checked_tests", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    cases, caches = _cases(mod), _caches()
    pairs = [line.split("\t") for line in Path(mapfile).read_text().splitlines() if line.strip()]
    for name, rx in [("clean", ""), *pairs]:
        pid = os.fork()
        if pid == 0:
            if name != "clean":
                os.environ["MUTANT_UNDER_TEST"] = name
            try:
                _run(cases, caches, rx or ".")
            except BaseException:  # noqa: BLE001 - any failure kills the mutant
                if name == "clean":
                    import traceback

                    traceback.print_exc()
                os._exit(1)
            os._exit(0)
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if name == "clean":
            print(f"clean: {'passed' if code == 0 else 'FAILED: fix the tests first'}", flush=True)
            if code:
                return 1
        else:
            print(f"{name}: {'survived' if code == 0 else f'killed (exit {code})'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
