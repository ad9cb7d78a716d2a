#!/usr/bin/env bash
# Prints the shell exports that put a CUDA toolkit's nvcc on PATH, for building pycuda on a Jetson:
# JetPack installs CUDA under /usr/local/cuda(-X.Y) but does not put it on PATH, and pycuda's build
# finds CUDA only through nvcc. Used by scripts/bootstrap.sh as: eval "$(scripts/cuda-env.sh)".
# HARNESS_CUDA_ROOTS (space-separated globs) replaces the search list; prints nothing if none has nvcc.
set -euo pipefail
roots="${HARNESS_CUDA_ROOTS:-${CUDA_HOME:-} /usr/local/cuda /usr/local/cuda-*}"
for cuda in $roots; do
  if [ -x "$cuda/bin/nvcc" ]; then
    printf 'export PATH=%q CUDA_ROOT=%q CUDA_HOME=%q LD_LIBRARY_PATH=%q\n' \
      "$cuda/bin:$PATH" "$cuda" "$cuda" "$cuda/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    exit 0
  fi
done
