#!/usr/bin/env bash
# Make the README's screenshots (docs/screenshots/) from the bundled sample registry.
# A person runs this on purpose; tests never write into the repository.
#   bash scripts/screenshots.sh
# Installs, by their Debian names, what a faithful picture needs: chromium + chromium-driver
# and fonts-noto-cjk (without a CJK font every Chinese label renders as an empty box), then
# checks the font is really known to fontconfig before taking any picture.
set -euo pipefail
cd "$(dirname "$0")/.."
die() { echo "screenshots.sh: $*" >&2; exit 1; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v fc-list >/dev/null 2>&1 && fc-list :lang=zh family | grep -q . || need+=(fontconfig fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq || die "apt-get update failed"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" \
    >/dev/null || die "apt-get install ${need[*]} failed"
fi
fc-list :lang=zh family | grep -q . || die "no CJK font known to fontconfig after installing fonts-noto-cjk"
[ -x .venv/bin/python ] || { python3 -m venv .venv && .venv/bin/pip install -q -e ".[test]"; } \
  || die "could not create .venv"
.venv/bin/python scripts/screenshots.py --out docs/screenshots "$@"
