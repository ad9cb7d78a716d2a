#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in ./.venv.
#
# Idempotent: a stamp records the inputs (pyproject, this script, python, machine class);
# when nothing changed the second run returns in well under a second.
#
# Machine classes, detected automatically (override with HARNESS_MACHINE=cpu|nvidia|jetson|rpi):
#   rpi     Raspberry Pi: no PyTorch at all (the device measures ONNX files exported on a
#           workstation: run-all --onnx-dir DIR); HARNESS_TORCH=1 adds a CPU-only torch from
#           PyTorch's CPU index, never PyPI's (on aarch64 that is a 5.6 GB CUDA build).
#   jetson  venv with --system-site-packages so JetPack's TensorRT (and NVIDIA's torch
#           wheel, when installed) are visible; nothing CUDA is pip-installed, no PyPI torch.
#   nvidia  desktop NVIDIA GPU: PyPI's default torch (CUDA) plus the [nvidia] extra when it installs.
#   cpu     a CPU-only torch is installed *first*, so the CUDA build is never pulled.
# HARNESS_TORCH=0 leaves PyTorch out on any class (a device that only measures export folders).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HARNESS_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
torch_version="${HARNESS_TORCH_VERSION:-2.13.0}"
torch_cpu_index="${HARNESS_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

say() { echo "[bootstrap] $*" >&2; }

detect_machine() {
  if [ -n "${HARNESS_MACHINE:-}" ]; then echo "$HARNESS_MACHINE"; return; fi
  # a venv set up with HARNESS_MACHINE keeps its class (./run_all.sh later needs no variable)
  if [ -s "$venv/.harness-machine" ]; then cat "$venv/.harness-machine"; return; fi
  if [ -f /etc/nv_tegra_release ] || grep -qi 'jetson\|nvidia' /proc/device-tree/model 2>/dev/null; then
    echo jetson; return
  fi
  if grep -qi 'raspberry pi' /proc/device-tree/model 2>/dev/null; then
    echo rpi; return
  fi
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo nvidia; return
  fi
  echo cpu
}

command -v "$py" >/dev/null 2>&1 || { say "error: $py not found; install Python >= 3.8 or set PYTHON=/path/to/python3"; exit 1; }
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 8))' \
  || { say "error: $("$py" --version 2>&1) is too old; the harness needs Python >= 3.8 (set PYTHON=...)"; exit 1; }

machine="$(detect_machine)"
# PyTorch wanted? default: yes, except on a Raspberry Pi (HARNESS_TORCH=0|1 decides)
want_torch="${HARNESS_TORCH:-}"
if [ -z "$want_torch" ] && [ -s "$venv/.harness-torch" ]; then want_torch="$(cat "$venv/.harness-torch")"; fi
if [ -z "$want_torch" ]; then
  if [ "$machine" = rpi ]; then want_torch=0; else want_torch=1; fi
fi
stamp_want="$( { cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh"; "$py" --version 2>&1; echo "$machine $torch_version torch=$want_torch"; } | sha256sum | cut -d' ' -f1)"
stamp_file="$venv/.harness-bootstrap"
if [ -x "$venv/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_want" ]; then
  exit 0
fi

say "setting up $venv for a '$machine' machine (first run takes a few minutes)"
if [ ! -x "$venv/bin/python" ]; then
  if [ "$machine" = jetson ]; then
    "$py" -m venv --system-site-packages "$venv"
  else
    "$py" -m venv "$venv"
  fi
fi
vpy="$venv/bin/python"
pipi() { "$vpy" -m pip install --disable-pip-version-check -q "$@"; }

has_torch() { "$vpy" -c 'import torch' >/dev/null 2>&1; }

cpu_torch() {
  # 'X+cpu' exists only as a local/find-links wheel or on PyTorch's CPU index, never on PyPI,
  # so this cannot pick up a CUDA build; then PyTorch's CPU index itself.
  if ! pipi "torch==$torch_version+cpu" 2>/dev/null; then
    say "installing CPU-only torch from $torch_cpu_index"
    pipi --index-url "$torch_cpu_index" "torch==$torch_version" \
      || pipi --index-url "$torch_cpu_index" torch
  fi
}

extras=test
case "$machine" in
  cpu)
    if [ "$want_torch" = 1 ]; then
      if ! has_torch || "$vpy" -c 'import sys, torch; sys.exit(torch.version.cuda is None)' 2>/dev/null; then
        cpu_torch
      fi
      extras=test,torch
    fi
    pipi -e "$root[$extras]"
    ;;
  rpi)
    if [ "$want_torch" = 1 ] && ! has_torch; then
      cpu_torch || say "warning: no CPU-only torch for this Pi from $torch_cpu_index; export on a workstation instead (run-all --onnx-dir)"
    fi
    pipi -e "$root[test]"
    ;;
  nvidia)
    if [ "$want_torch" = 1 ]; then
      has_torch || pipi "torch==$torch_version" || pipi torch
      extras=test,torch
    fi
    pipi -e "$root[$extras]"
    pipi -e "$root[nvidia]" || say "warning: the [nvidia] extra (tensorrt, pycuda, nvidia-ml-py) did not install; the TensorRT backend and NVML power will report themselves absent"
    ;;
  jetson)
    # PyPI's aarch64 torch is a CUDA build for servers (5.6 GB), not for Jetson: never installed here.
    has_torch || say "note: no torch visible; measuring needs none (export on a workstation, run-all --onnx-dir DIR); to export or train here, install NVIDIA's JetPack torch wheel"
    pipi -e "$root[test]"
    # pycuda's build finds CUDA through nvcc on PATH, which JetPack does not set up
    eval "$("$root/scripts/cuda-env.sh")"
    command -v nvcc >/dev/null 2>&1 || say "warning: no nvcc under /usr/local/cuda*/bin (JetPack's CUDA toolkit: sudo apt install nvidia-jetpack); pycuda will not build"
    pipi -e "$root[jetson]" || say "warning: pycuda did not install (needs JetPack's CUDA: nvcc under /usr/local/cuda/bin); the TensorRT backend will report itself absent"
    "$vpy" -c 'import tensorrt' >/dev/null 2>&1 || say "warning: TensorRT is not importable; install JetPack's python3-libnvinfer"
    ;;
  *) say "error: unknown HARNESS_MACHINE '$machine' (use cpu, nvidia, jetson or rpi)"; exit 1 ;;
esac

echo "$stamp_want" > "$stamp_file"
echo "$machine" > "$venv/.harness-machine"
echo "$want_torch" > "$venv/.harness-torch"
say "ready ($machine): $("$vpy" -c '
import importlib.util as u
import onnxruntime
torch = "torch " + __import__("torch").__version__ if u.find_spec("torch") else "no torch (measures export folders: --onnx-dir)"
print(torch, "| onnxruntime", onnxruntime.__version__)')"
