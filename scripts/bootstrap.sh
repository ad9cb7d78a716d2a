#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment in ./.venv.
#
# Idempotent: a stamp records the inputs (pyproject, this script, python, machine class);
# when nothing changed the second run returns in well under a second.
#
# Machine classes, detected automatically (override with HARNESS_MACHINE=cpu|nvidia|jetson):
#   jetson  venv with --system-site-packages so JetPack's TensorRT (and NVIDIA's torch
#           wheel, when installed) are visible; nothing CUDA is pip-installed.
#   nvidia  desktop NVIDIA GPU: PyPI's default torch (CUDA) plus the [nvidia] extra when it installs.
#   cpu     a CPU-only torch is installed *first*, so the CUDA build is never pulled.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${HARNESS_VENV:-$root/.venv}"
py="${PYTHON:-python3}"
torch_version="${HARNESS_TORCH_VERSION:-2.13.0}"
torch_cpu_index="${HARNESS_TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}"

say() { echo "[bootstrap] $*" >&2; }

detect_machine() {
  if [ -n "${HARNESS_MACHINE:-}" ]; then echo "$HARNESS_MACHINE"; return; fi
  if [ -f /etc/nv_tegra_release ] || grep -qi 'jetson\|nvidia' /proc/device-tree/model 2>/dev/null; then
    echo jetson; return
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
stamp_want="$( { cat "$root/pyproject.toml" "$root/scripts/bootstrap.sh"; "$py" --version 2>&1; echo "$machine $torch_version"; } | sha256sum | cut -d' ' -f1)"
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

case "$machine" in
  cpu)
    if ! has_torch || "$vpy" -c 'import sys, torch; sys.exit(torch.version.cuda is None)' 2>/dev/null; then
      # 'X+cpu' exists only as a local/find-links wheel or on PyTorch's CPU index, never on PyPI,
      # so this cannot pick up a CUDA build; then PyTorch's CPU index itself.
      if ! pipi "torch==$torch_version+cpu" 2>/dev/null; then
        say "installing CPU-only torch from $torch_cpu_index"
        pipi --index-url "$torch_cpu_index" "torch==$torch_version" \
          || pipi --index-url "$torch_cpu_index" torch
      fi
    fi
    pipi -e "$root[test]"
    ;;
  nvidia)
    has_torch || pipi "torch==$torch_version" || pipi torch
    pipi -e "$root[test]"
    pipi -e "$root[nvidia]" || say "warning: the [nvidia] extra (tensorrt, pycuda, nvidia-ml-py) did not install; the TensorRT backend and NVML power will report themselves absent"
    ;;
  jetson)
    if ! has_torch; then
      say "warning: no torch visible (install NVIDIA's JetPack torch wheel for GPU torch); installing PyPI's CPU torch for the reference path"
      pipi torch || say "warning: torch did not install; the PyTorch reference backend will be absent"
    fi
    pipi -e "$root[test]"
    pipi -e "$root[jetson]" || say "warning: pycuda did not install (needs CUDA headers from JetPack); the TensorRT backend will report itself absent"
    "$vpy" -c 'import tensorrt' >/dev/null 2>&1 || say "warning: TensorRT is not importable; install JetPack's python3-libnvinfer"
    ;;
  *) say "error: unknown HARNESS_MACHINE '$machine' (use cpu, nvidia or jetson)"; exit 1 ;;
esac

echo "$stamp_want" > "$stamp_file"
say "ready: $("$vpy" -c 'import torch, onnxruntime; print("torch", torch.__version__, "| onnxruntime", onnxruntime.__version__)')"
