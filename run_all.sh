#!/usr/bin/env bash
# The main job: ./run_all.sh --device cpu [--data DIR] [--frames DIR] [--sets A,B] [--scale 2,3,4]
# Bootstraps ./.venv on first use, then runs `python -m harness run-all` with the same arguments.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/bootstrap.sh"
exec "${HARNESS_VENV:-$root/.venv}/bin/python" -m harness run-all "$@"
