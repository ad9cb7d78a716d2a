#!/usr/bin/env bash
# The test command (README, .ci/run): bootstraps ./.venv on first use, then runs pytest.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k imresize -x
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
exec "${HARNESS_VENV:-$root/.venv}/bin/python" -m pytest "$@"
