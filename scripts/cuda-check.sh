#!/usr/bin/env bash
# The CUDA paths on a real NVIDIA GPU, as one short script: the machine, doctor (with a capture for
# tests/fixtures), the CUDA tests, bench with PyTorch on the GPU (fp16 and fp32; TensorRT and ONNX
# Runtime's CUDA provider where installed, else their reason), and a small run-all on the GPU.
#
#   scripts/cuda-check.sh [OUT]      # OUT: where logs and files go (default: cuda-check/)
#
# Uses .venv/bin/python when there is one, else $PY, else python3 with this checkout on PYTHONPATH
# (a machine whose Python already holds a CUDA PyTorch and the dependencies). Each step has its own
# time limit, so that one hung step leaves the others' output; the summary names the failed steps.
# CHECK_DEVICE / CHECK_PRECISION (default cuda / fp16) let the script itself be tried on a CPU.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:-$root/cuda-check}"
mkdir -p "$out"
cd "$root" || exit 1
if [ -x .venv/bin/python ]; then PY="${PY:-.venv/bin/python}"; else PY="${PY:-python3}"; fi
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 HARNESS_NO_PROGRESS=1
device="${CHECK_DEVICE:-cuda}"
precision="${CHECK_PRECISION:-fp16}"
models="ESPCN_s2_D34_S32,FSRCNN_s2_D56_S12_M4,eSR-TM_s2_K7_C4,eSR-MAX_s2_K3_C1,ESPCN_s4_D34_S32,ABPN_s2"
failed=()

step() {  # step NAME SECONDS COMMAND...: run, log to OUT/NAME.log and the terminal, note a failure
  local name="$1" limit="$2"
  shift 2
  echo "=== $name ($*)"
  local t0=$SECONDS
  timeout -k 10 "$limit" "$@" 2>&1 | tee "$out/$name.log"
  local rc=${PIPESTATUS[0]}
  echo "=== $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || failed+=("$name ($rc)")
}

step machine 60 bash -c "nvidia-smi -L; nvidia-smi --query-gpu=name,driver_version,power.draw,clocks.sm --format=csv; \
  $PY -c 'import sys, torch, onnxruntime, numpy; print(sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", \
torch.version.cuda, torch.cuda.is_available(), \"ort\", onnxruntime.__version__, onnxruntime.get_available_providers(), \
\"numpy\", numpy.__version__)'"
step doctor 120 "$PY" -m harness doctor --device "$device" --capture "$out/capture"
tar czf "$out/capture.tgz" -C "$out" capture 2>/dev/null && rm -rf "$out/capture"
step tests 200 "$PY" -m pytest -q -p no:cacheprovider -rs tests/test_cuda.py tests/power tests/backends/test_runtime_labels.py
for p in "$precision" fp32; do
  step "bench-torch-$p" 150 "$PY" -m harness bench --device "$device" --backend torch --precision "$p" --duration 2 \
    --model "$models" --db "$out/bench.db"
done
step bench-tensorrt 60 "$PY" -m harness bench --device "$device" --backend tensorrt --duration 2 --model eSR-TM_s2_K7_C4 \
  --db "$out/bench.db"
step bench-ort-cuda 60 "$PY" -m harness bench --device "$device" --backend onnxruntime --precision fp32 --duration 2 \
  --model eSR-TM_s2_K7_C4 --db "$out/bench.db"
step run-all 200 "$PY" -m harness run-all --device "$device" --backend torch --precision "$precision" --pool none \
  --models "eSR-TM_s{scale}_K7_C4,ESPCN_s{scale}_D34_S32,FSRCNN_s{scale}_D56_S12_M4" --scale 2,4 --duration 2 \
  --out "$out/run/results"
cp "$out"/run/results/*.csv "$out/" 2>/dev/null

echo "=== summary: ${#failed[@]} step(s) failed${failed:+: ${failed[*]}}"
[ "${#failed[@]}" -eq 0 ]
