#!/usr/bin/env bash
# Benchmark: seconds per model/scale pair of a sweep, this checkout against another revision.
#
#   scripts/compare-sweep-speed.sh OLD_REV ESR_MODEL_FILES [N]
#
# Runs `run-all` on the same N pairs spread over `--pool all` (default 20; plus the bicubic
# baselines at their scales) with the official eSR weights (ESR_MODEL_FILES: the eSR repository's
# model-files folder or zip), once with OLD_REV (checked out in a temporary worktree) and once with
# this checkout, each from an empty cache (so exports count, as in a first sweep), one after the
# other on this machine, and prints each run's seconds per pair and their ratio. Uses this
# checkout's virtual environment for both.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
old_rev="${1:?usage: $0 OLD_REV ESR_MODEL_FILES [N]}"
weights="${2:?usage: $0 OLD_REV ESR_MODEL_FILES [N]}"
n="${3:-20}"
py="${HARNESS_VENV:-$root/.venv}/bin/python"
work="$(mktemp -d -t compare-sweep-XXXX)"
trap 'git -C "$root" worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$root" worktree add -q --detach "$work/old" "$old_rev"
models="$(cd "$root" && "$py" -c "
import sys; sys.path.insert(0, 'scripts'); sys.path.insert(0, '.')
import importlib.util
spec = importlib.util.spec_from_file_location('p', 'scripts/profile-sweep.py'); m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m); print(','.join(m.sample_ids($n)))")"
declare -A per_pair
for tree in old new; do
  dir="$root"; [ "$tree" = old ] && dir="$work/old"
  export HARNESS_CACHE="$work/cache-$tree"
  (cd "$dir" && "$py" -m harness zoo import-esr "$weights" >/dev/null)
  start=$(date +%s.%N)
  (cd "$dir" && HARNESS_NO_PROGRESS=1 "$py" -m harness run-all --device cpu --pool none --models "$models" \
      --weights official --out "$work/out-$tree" --plots "$work/plots-$tree" --json > "$work/$tree.json" \
      2> "$work/$tree.log") || echo "[$tree] run-all exited $? (see $work/$tree.log)" >&2
  end=$(date +%s.%N)
  pairs=$("$py" -c "import json; print(len(json.load(open('$work/$tree.json'))))")
  per_pair[$tree]=$("$py" -c "print(round(($end - $start) / $pairs, 2))")
  label="$old_rev"
  if [ "$tree" = new ]; then
    label="$(git -C "$root" rev-parse --short HEAD)"
    git -C "$root" diff --quiet HEAD -- harness || label="$label + uncommitted changes"
  fi
  echo "$tree ($label): $pairs pairs, $(printf '%.0f' "$("$py" -c "print($end - $start)")") s, ${per_pair[$tree]} s per pair"
done
"$py" -c "print(f'seconds per pair: {${per_pair[old]}} -> {${per_pair[new]}} ({${per_pair[old]} / ${per_pair[new]}:.2f}x fewer)')"
