#!/usr/bin/env bash
# System packages the tests need, from Debian's archive: promtool (package prometheus) for the
# alert-rule tests, headless Chromium (package chromium) for the `dvc plots show` browser test, and
# the PostgreSQL server (package postgresql) for the team stack (make team-up) and its tests.
set -euo pipefail
declare -A PACKAGE_OF=([promtool]=prometheus [chromium]=chromium)
missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
# Debian installs the server tools under /usr/lib/postgresql/<version>/bin, not on PATH.
if ! command -v pg_ctl >/dev/null 2>&1 && ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  missing+=(postgresql)
fi
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "setup: missing system packages; install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "setup: installing ${missing[*]} (apt)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The packages start services on some systems; the project runs its own Prometheus and its own
# throwaway PostgreSQL cluster (127.0.0.1 only) when it needs one.
$SUDO systemctl stop prometheus >/dev/null 2>&1 || true
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  for cluster in /etc/postgresql/*/*; do
    [ -d "$cluster" ] || continue
    $SUDO pg_ctlcluster "$(basename "$(dirname "$cluster")")" "$(basename "$cluster")" stop >/dev/null 2>&1 || true
  done
fi
