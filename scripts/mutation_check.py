"""Re-check named mutmut mutants against some test files, one forked child per mutant.

Run from a mutation work copy made by ``scripts/mutation.sh`` (it holds ``mutants/``)::

    python -P scripts/mutation_check.py tests/geo/test_x.py [-k expr] -- geo.mod.x_f__mutmut_3 ...

``-P`` keeps the copy's unmutated ``geo/`` off ``sys.path``; ``mutants/`` goes first. Prints
``<mutant>: killed (exit n)`` or ``survived`` per mutant, after a clean run that must pass.
Used where mutmut's own verdict was doubtful (module caches warm across its forked runs)
or a full mutmut re-run did not fit; it is not a substitute for ``mutation.sh``'s score.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath("mutants"))

import pytest  # noqa: E402


def main(argv: list[str]) -> int:
    """Check each mutant after ``--`` with the pytest arguments before it; 1 if clean fails."""
    sep = argv.index("--")
    tests, mutants = argv[:sep], argv[sep + 1:]
    for name in ["clean", *mutants]:
        pid = os.fork()
        if pid == 0:
            if name != "clean":
                os.environ["MUTANT_UNDER_TEST"] = name
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(null, 2)
            args = ["-q", "-x", "-p", "no:cacheprovider", "--rootdir=.", *tests]
            os._exit(int(pytest.main(args)))
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if name == "clean":
            verdict = "passed" if code == 0 else f"FAILED (exit {code}): fix the tests first"
        else:
            verdict = "survived" if code == 0 else f"killed (exit {code})"
        print(f"{name}: {verdict}", flush=True)
        if name == "clean" and code != 0:
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
