#!/usr/bin/env bash
# System packages the tests need, from Debian's archive: promtool (package prometheus) for the
# alert-rule tests and headless Chromium (package chromium) for the `dvc plots show` browser test.
set -euo pipefail
declare -A PACKAGE_OF=([promtool]=prometheus [chromium]=chromium)
missing=()
for tool in "${!PACKAGE_OF[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${PACKAGE_OF[$tool]}")
done
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
# The prometheus package starts a service on some systems; the project runs its own when it needs one.
$SUDO systemctl stop prometheus >/dev/null 2>&1 || true
