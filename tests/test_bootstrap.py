"""The setup script's device logic, run for real on fake layouts (no network, no pip)."""
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cuda_env_puts_jetpacks_nvcc_on_path_for_pycuda(tmp_path):
    """JetPack installs CUDA under /usr/local/cuda-X.Y without putting nvcc on PATH; pycuda's build needs it."""
    nvcc = tmp_path / "usr/local/cuda-11.4/bin/nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("#!/bin/sh\necho 'Cuda compilation tools, release 11.4'\n")
    nvcc.chmod(0o755)
    env = dict(os.environ, PATH="/usr/bin:/bin", HARNESS_CUDA_ROOTS=f"{tmp_path}/usr/local/cuda {tmp_path}/usr/local/cuda-*")
    env.pop("CUDA_HOME", None)
    exports = subprocess.run([str(ROOT / "scripts/cuda-env.sh")], env=env, capture_output=True, text=True, check=True)
    shell = subprocess.run(["bash", "-c", exports.stdout + "command -v nvcc; nvcc; echo $CUDA_ROOT"], env=env,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    assert shell == [str(nvcc), "Cuda compilation tools, release 11.4", str(nvcc.parent.parent)]
    env["HARNESS_CUDA_ROOTS"] = str(tmp_path / "nothing")
    assert subprocess.run([str(ROOT / "scripts/cuda-env.sh")], env=env, capture_output=True, text=True,
                          check=True).stdout == ""
    assert 'eval "$("$root/scripts/cuda-env.sh")"' in (ROOT / "scripts/bootstrap.sh").read_text()
