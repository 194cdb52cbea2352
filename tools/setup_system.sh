#!/usr/bin/env bash
# System packages the tests need: promtool (Debian's prometheus package) for alert-rule tests.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "setup: promtool is missing; install Debian's 'prometheus' package (apt-get install prometheus)" >&2
  exit 1
fi
echo "setup: installing promtool (apt package prometheus)"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
# The package starts a service on some systems; the project runs its own Prometheus when it needs one.
$SUDO systemctl stop prometheus >/dev/null 2>&1 || true
