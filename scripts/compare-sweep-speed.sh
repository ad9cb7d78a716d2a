#!/usr/bin/env bash
# Benchmark: seconds per model/scale pair of a sweep, this checkout against another revision.
#
#   scripts/compare-sweep-speed.sh OLD_REV ESR_MODEL_FILES [N] [ROUNDS]
#
# Runs `run-all` on the same N pairs spread over `--pool all` (default 20; plus the bicubic
# baselines at their scales) with the official eSR weights (ESR_MODEL_FILES: the eSR repository's
# model-files folder or zip), with OLD_REV (checked out in a temporary worktree) and with this
# checkout, each run from an empty cache (so exports count, as in a first sweep), in ROUNDS
# interleaved rounds (default 2) in the order old, new, new, old, old, new, ... so that a drift of
# the machine's load weighs on both trees alike. Prints each run's seconds per pair, then each tree's
# median over its runs and their ratio. Uses this checkout's virtual environment for both.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
old_rev="${1:?usage: $0 OLD_REV ESR_MODEL_FILES [N] [ROUNDS]}"
weights="${2:?usage: $0 OLD_REV ESR_MODEL_FILES [N] [ROUNDS]}"
n="${3:-20}"
rounds="${4:-2}"
py="${HARNESS_VENV:-$root/.venv}/bin/python"
work="$(mktemp -d -t compare-sweep-XXXX)"
trap 'git -C "$root" worktree remove --force "$work/old" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
git -C "$root" worktree add -q --detach "$work/old" "$old_rev"
models="$(cd "$root" && "$py" -c "
import sys; sys.path.insert(0, 'scripts'); sys.path.insert(0, '.')
import importlib.util
spec = importlib.util.spec_from_file_location('p', 'scripts/profile-sweep.py'); m = importlib.util.module_from_spec(spec)
spec.loader.exec_module(m); print(','.join(m.sample_ids($n)))")"
declare -A runs
order=()
for ((r = 0; r < rounds; r++)); do
  if ((r % 2 == 0)); then order+=(old new); else order+=(new old); fi
done
i=0
for tree in "${order[@]}"; do
  i=$((i + 1))
  dir="$root"; [ "$tree" = old ] && dir="$work/old"
  export HARNESS_CACHE="$work/cache-$i"
  (cd "$dir" && "$py" -m harness zoo import-esr "$weights" >/dev/null)
  start=$(date +%s.%N)
  (cd "$dir" && HARNESS_NO_PROGRESS=1 "$py" -m harness run-all --device cpu --pool none --models "$models" \
      --weights official --out "$work/out-$i" --plots "$work/plots-$i" --json > "$work/$i.json" \
      2> "$work/$i.log") || echo "[$tree] run-all exited $? (see $work/$i.log)" >&2
  end=$(date +%s.%N)
  pairs=$("$py" -c "import json; print(len(json.load(open('$work/$i.json'))))")
  per=$("$py" -c "print(round(($end - $start) / $pairs, 2))")
  runs[$tree]="${runs[$tree]:-} $per"
  label="$old_rev"
  if [ "$tree" = new ]; then
    label="$(git -C "$root" rev-parse --short HEAD)"
    git -C "$root" diff --quiet HEAD -- harness || label="$label + uncommitted changes"
  fi
  echo "run $i, $tree ($label): $pairs pairs, $(printf '%.0f' "$("$py" -c "print($end - $start)")") s, $per s per pair"
  rm -rf "$work/cache-$i" "$work/out-$i" "$work/plots-$i"
done
"$py" - "${runs[old]}" "${runs[new]}" <<'EOF'
import statistics
import sys

old, new = ([float(v) for v in arg.split()] for arg in sys.argv[1:3])
mo, mn = statistics.median(old), statistics.median(new)
print(f"seconds per pair, median of {len(old)} runs each: {mo:.2f} -> {mn:.2f} ({mo / mn:.2f}x fewer); "
      f"old {', '.join(map(str, old))}; new {', '.join(map(str, new))}")
EOF
