#!/usr/bin/env bash
# Mutation testing (mutmut 3) of the core geo modules, on demand; NOT part of per-commit CI.
#
#   bash scripts/mutation.sh                      # every module below, one after the other
#   bash scripts/mutation.sh crs classify         # only these modules
#   MUTATION_CHILDREN=2 bash scripts/mutation.sh rules
#   MUTATION_KEEP=/tmp/bw-mut bash scripts/mutation.sh crs   # reuse/keep the work copy
#   MUTATION_ONLY='geo.rules.x__test_value* geo.rules.x__equal*' bash scripts/mutation.sh rules
#                                 # only these mutants (fnmatch patterns; the rest "not run")
#   MUTATION_TESTS='tests/geo/test_rules_catalog_semantics.py' ...   # other test files
#
# The repository is never written to: each module is mutated in a throw-away copy under
# $TMPDIR (mutmut writes its mutants/ tree and cache there).  Each module runs only the fast
# test files that exercise it (MODULE_TESTS below), so one module's score does not depend on
# the rest of the suite.  Prints "module killed/total score%" per module and writes the
# survivors to <copy>/<module>.survivors.txt.  Needs the [test] extras (mutmut).
#
# Tests marked `slow` (real layers, 200k points) are left out: a surviving mutant would
# cost their whole run; the per-commit suite still runs them.
#
# Score = killed / (total - skipped); timeouts and segfaults count as killed (the mutant
# changed behaviour observably), "no tests" and survivors count against the score.
set -euo pipefail
set -f  # MUTATION_ONLY holds fnmatch patterns for mutmut, not for the shell

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
CHILDREN="${MUTATION_CHILDREN:-1}"

declare -A MODULE_TESTS=(
  [crs]="tests/geo/test_crs.py tests/geo/test_crs_reference.py tests/geo/test_crs_inverse_convergence.py"
  [cellindex]="tests/geo/test_cellindex.py tests/geo/test_cellindex_invariants.py tests/geo/test_cellindex_edges.py tests/geo/test_cellindex_build.py"
  [classify]="tests/geo/test_classify.py tests/geo/test_classify_parts.py tests/geo/test_classify_coarse.py tests/geo/test_classify_small.py"
  [rules]="tests/geo/test_rules_parts.py tests/geo/test_rules_catalog_semantics.py tests/geo/test_rules_custom_catalog.py tests/geo/test_rules.py tests/geo/test_rules_boundaries.py tests/geo/test_rules_defect.py"
  [ingest]="tests/geo/test_ingest_parts.py tests/geo/test_ingest_errors.py tests/geo/test_ingest.py"
  [export]="tests/geo/test_export.py tests/geo/test_export_parts.py tests/geo/test_export_small.py tests/geo/test_xlsx.py tests/geo/test_provenance.py tests/geo/test_files.py"
)
ORDER=(crs cellindex classify rules ingest export)
MODULES=("$@")
[[ ${#MODULES[@]} -eq 0 ]] && MODULES=("${ORDER[@]}")

"$PYTHON" -c "import mutmut" 2>/dev/null || {
  echo "mutmut is not installed: pip install -e '.[test]'" >&2; exit 2; }

copy_repo() {  # $1 = destination; working tree without .git, venv or caches
  mkdir -p "$1"
  (cd "$ROOT" && tar --exclude=./.git --exclude=./.venv --exclude=./mutants \
     --exclude='__pycache__' --exclude=./basinwatch-data -cf - .) | (cd "$1" && tar -xf -)
}

summary=()
for module in "${MODULES[@]}"; do
  tests="${MUTATION_TESTS:-${MODULE_TESTS[$module]:-}}"
  [[ -n "$tests" ]] || { echo "unknown module: $module (one of ${ORDER[*]})" >&2; exit 2; }
  work="${MUTATION_KEEP:-$(mktemp -d "${TMPDIR:-/tmp}/bw-mutation.XXXXXX")}/$module"
  [[ -d "$work" ]] || copy_repo "$work"
  existing=()
  for t in $tests; do [[ -f "$work/$t" ]] && existing+=("\"$t\""); done
  selection=$(IFS=,; echo "${existing[*]}")
  # Per-module config, written into the copy only ([tool.mutmut] in the copy's pyproject).
  # also_copy: the other packages and data the tests import (mutants/ is first on sys.path).
  # A kept copy (MUTATION_KEEP) starts again from its pristine pyproject: a second
  # [tool.mutmut] table would make the file invalid TOML.
  [[ -f "$work/pyproject.toml.orig" ]] ||
    sed '/^\[tool\.mutmut\]/,$d' "$work/pyproject.toml" >"$work/pyproject.toml.orig"
  cp "$work/pyproject.toml.orig" "$work/pyproject.toml"
  cat >>"$work/pyproject.toml" <<EOF

[tool.mutmut]
source_paths = ["geo"]
only_mutate = ["geo/$module.py"]
also_copy = ["api", "layers", "docs", "benchmarks", "scripts", "README.md", "ARCHITECTURE.md"]
pytest_add_cli_args = ["-p", "no:cacheprovider", "-q", "-x", "-m", "not postgis and not browser and not gdal and not slow"]
pytest_add_cli_args_test_selection = [$selection]
use_git_change_detection = false
EOF
  echo "== $module: mutating geo/$module.py in $work against ${existing[*]}"
  (cd "$work" && "$PYTHON" -m mutmut run --max-children "$CHILDREN" ${MUTATION_ONLY:-} >"$work/$module.log" 2>&1) || true
  (cd "$work" && "$PYTHON" -m mutmut results --all true >"$work/$module.results.txt" 2>&1) || true
  line=$("$PYTHON" - "$work/$module.results.txt" "$module" <<'PY'
import collections, re, sys
path, module = sys.argv[1], sys.argv[2]
status = collections.Counter()
survivors = []
for row in open(path, encoding="utf-8"):
    m = re.match(r"\s*(geo\.\S+): (.+)$", row)
    if not m:
        continue
    name, st = m.group(1), m.group(2).strip()
    status[st] += 1
    if st in ("survived", "no tests"):
        survivors.append(f"{name}: {st}")
killed = status["killed"] + status["timeout"] + status["segfault"]
counted = sum(status.values()) - status["skipped"] - status["not checked"]
score = 100.0 * killed / counted if counted else 0.0
open(path.replace(".results.txt", ".survivors.txt"), "w").write("\n".join(survivors) + "\n")
status["not run"] = status.pop("not checked", 0)
detail = ", ".join(f"{k} {v}" for k, v in sorted(status.items()) if v)
print(f"{module:10s} {killed}/{counted} killed = {score:.1f}%  ({detail})")
PY
)
  echo "$line"
  summary+=("$line")
done
echo "== mutation score per module (killed / tested)"
printf '%s\n' "${summary[@]}"
