#!/usr/bin/env bash
# The Python 3.8 job: runs every torch-free test under CPython 3.8, in a venv without PyTorch.
#
#   scripts/test-py38.sh [PYTEST ARGS...]        e.g. scripts/test-py38.sh -x -k power
#
# Why: JetPack 5 (the last JetPack for the Jetson AGX Xavier) ships Python 3.8, and a device that
# measures exported ONNX files has no PyTorch. See docs/python38.md.
#
# What it does:
#   1. finds a Python 3.8: $PYTHON38, else $(pyenv root)/versions/3.8.*/bin/python, else python3.8
#      on PATH;
#   2. creates (or reuses) a separate venv: $HARNESS_PY38_VENV, default .venv-py38/ in the repo
#      (never the project's default .venv);
#   3. installs the project with its [test] extra only -- never PyTorch -- and records a stamp, so a
#      rerun with unchanged pyproject.toml/python skips the install;
#   4. checks that torch is NOT importable there (tests marked `torch` must skip, not pass by luck);
#   5. runs `python -m pytest -m "not torch"` on tests/ (extra arguments are passed to pytest);
#   6. prints the resolved versions of the key dependencies.
# Exit status: pytest's.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
say() { echo "[test-py38] $*" >&2; }

is_py38() { [ -x "$1" ] && "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 8))' 2>/dev/null; }

find_py38() {
  if [ -n "${PYTHON38:-}" ]; then
    is_py38 "$PYTHON38" || { say "error: PYTHON38=$PYTHON38 is not a Python 3.8 interpreter"; exit 2; }
    echo "$PYTHON38"; return
  fi
  if command -v pyenv >/dev/null 2>&1; then
    local cand
    for cand in $(ls -d "$(pyenv root)"/versions/3.8.*/bin/python 2>/dev/null | sort -V -r); do
      if is_py38 "$cand"; then echo "$cand"; return; fi
    done
  fi
  if command -v python3.8 >/dev/null 2>&1 && is_py38 "$(command -v python3.8)"; then
    command -v python3.8; return
  fi
  say "error: no Python 3.8 found; fix: 'pyenv install 3.8' (or apt-get install python3.8 python3.8-venv), or set PYTHON38=/path/to/python3.8"
  exit 2
}

py38="$(find_py38)"
venv="${HARNESS_PY38_VENV:-$root/.venv-py38}"
vpy="$venv/bin/python"

if [ -x "$vpy" ] && ! is_py38 "$vpy"; then
  say "error: $venv exists but is not a Python 3.8 venv; remove it or set HARNESS_PY38_VENV"
  exit 2
fi
if [ ! -x "$vpy" ]; then
  say "creating $venv with $py38 ($("$py38" --version 2>&1))"
  "$py38" -m venv "$venv"
fi

stamp_want="$( { cat "$root/pyproject.toml" "$root/scripts/test-py38.sh"; "$vpy" --version 2>&1; } | sha256sum | cut -d' ' -f1)"
stamp_file="$venv/.harness-py38-stamp"
if [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$stamp_want" ]; then
  :
else
  say "installing the project with [test] into $venv (no PyTorch; about a minute the first time)"
  "$vpy" -m pip install --disable-pip-version-check -q --upgrade pip
  # Only the [test] extra: never [torch], so nothing here may pull PyTorch in.
  "$vpy" -m pip install --disable-pip-version-check -q -e "$root[test]"
  echo "$stamp_want" >"$stamp_file"
fi

if "$vpy" -c 'import torch' >/dev/null 2>&1; then
  say "error: torch is importable in $venv ($("$vpy" -c 'import torch; print(torch.__file__)')); this job must run without PyTorch. Fix: $vpy -m pip uninstall -y torch"
  exit 2
fi

cd "$root"
say "$("$vpy" --version 2>&1) in $venv; torch not importable (tests marked 'torch' are deselected)"
set +e
"$vpy" -m pytest -m "not torch" tests "$@"
status=$?
set -e

say "resolved versions ($("$vpy" --version 2>&1)):"
"$vpy" -m pip freeze --disable-pip-version-check 2>/dev/null \
  | grep -iE '^(numpy|scipy|scikit-image|opencv-python-headless|pandas|matplotlib|pillow|onnx|onnxruntime|pooch|tqdm|psutil|tomli|pytest|vermin)==' \
  | sed 's/^/  /' >&2
exit "$status"
