#!/usr/bin/env bash
# The test command (README, .ci/run): bootstraps ./.venv on first use, then runs pytest.
# Extra arguments go to pytest, e.g. ./run_tests.sh -k imresize -x
#
# The tests also exercise `train --cluster local`, so the first run adds the optional [ray]
# extra to the venv (about a minute; the benchmark itself never needs it). Where Ray has no
# wheel (or HARNESS_TEST_RAY=0) those tests skip with the reason.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
"$root/scripts/bootstrap.sh"
cd "$root"
vpy="${HARNESS_VENV:-$root/.venv}/bin/python"
if [ "${HARNESS_TEST_RAY:-1}" != 0 ] && ! "$vpy" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("ray") is None)'; then
  echo "[run_tests] installing the optional [ray] extra for the cluster tests (once)" >&2
  "$vpy" -m pip install --disable-pip-version-check -q -e "$root[ray]" \
    || echo "[run_tests] warning: Ray did not install here; the cluster tests will skip" >&2
fi
exec "$vpy" -X faulthandler -m pytest "$@"  # faulthandler: a crash, even at exit, prints every thread's stack
