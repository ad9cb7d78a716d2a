"""Caches survive crashes and concurrent runs (issue 20, point 3), and `data fetch --url` of a set
without a pinned hash (issue 20, point 6): unique temporary names renamed atomically, reads verified
(a damaged entry is rebuilt with one warning), builds under a file lock."""
import hashlib
import io
import os
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness import cachefile
from harness.cachefile import atomic_path, check_record, file_lock, load_or_build, verified, write_record
from harness.cli import main

pytestmark = pytest.mark.faults

ROOT = Path(__file__).resolve().parents[1]
needs_flock = pytest.mark.skipif(cachefile.fcntl is None, reason="no fcntl (Windows): builds run unlocked there")


def run_python(code, *args, env=None, **kwargs):
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def stray_temp_files(folder):
    return sorted(p.name for p in Path(folder).rglob("*.tmp"))


# --- the helpers ----------------------------------------------------------------------------------
def test_atomic_path_renames_on_success_and_removes_on_failure(tmp_path):
    target = tmp_path / "sub" / "entry.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target and not target.exists()
        tmp.write_bytes(b"whole")
    assert target.read_bytes() == b"whole" and stray_temp_files(tmp_path) == []
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed half way")
    assert target.read_bytes() == b"whole" and stray_temp_files(tmp_path) == []
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)  # not mkstemp's private mode: caches are shared


def test_a_record_names_every_mismatch(tmp_path):
    source, entry = tmp_path / "model.onnx", tmp_path / "model.int8.onnx"
    source.write_bytes(b"fp32")
    entry.write_bytes(b"int8")
    assert check_record(entry) == "no sha256 record"
    write_record(entry, sources=[source])
    text = (tmp_path / "model.int8.onnx.sha256").read_text()
    assert text == (f"{hashlib.sha256(b'int8').hexdigest()}  model.int8.onnx\n"
                    f"{hashlib.sha256(b'fp32').hexdigest()}  model.onnx\n")  # sha256sum -c reads it
    assert check_record(entry) is None and verified(entry) == entry
    entry.write_bytes(b"int")
    assert check_record(entry) == "sha256 mismatch: model.int8.onnx"
    entry.write_bytes(b"int8")
    source.write_bytes(b"new fp32")  # the entry was made from another source file: stale
    assert check_record(entry) == "sha256 mismatch: model.onnx"


def test_load_or_build_rebuilds_a_damaged_entry_once_with_one_warning(tmp_path):
    path = tmp_path / "entry.txt"
    builds = []

    def build(tmp):
        builds.append(tmp)
        tmp.write_text("42")
        return 42

    def load(p):
        return int(p.read_text())

    assert load_or_build(path, load, build) == 42 and len(builds) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_or_build(path, load, build) == 42 and len(builds) == 1  # a hit: no build, no warning
    path.write_text("garbage")
    with pytest.warns(UserWarning) as caught:
        assert load_or_build(path, load, build) == 42
    assert len(builds) == 2 and len(caught) == 1
    assert str(caught[0].message) == (f"{path}: damaged cache entry (ValueError: invalid literal for int() with "
                                      f"base 10: 'garbage'); rebuilding it")
    assert path.read_text() == "42" and stray_temp_files(tmp_path) == []


LOCKER = r"""
import sys, time
from pathlib import Path
from harness.cachefile import file_lock
Path(sys.argv[2]).touch()          # about to ask for the lock
with file_lock(sys.argv[1]):
    print(repr(time.time()))       # when it got it
"""


@needs_flock
def test_the_file_lock_excludes_another_process(tmp_path):
    path, ready = tmp_path / "entry.npz", tmp_path / "ready"
    with file_lock(path):
        child = run_python(LOCKER, path, ready)
        deadline = time.time() + 60
        while not ready.exists() and child.poll() is None and time.time() < deadline:
            time.sleep(0.01)
        assert ready.exists(), child.communicate()[1]
        time.sleep(0.3)  # the child is now asking; without a lock it would get it now, before the release
        released = time.time()
    out, err = child.communicate(timeout=60)
    assert child.returncode == 0, err
    assert float(out) >= released  # it got the lock only once this process had let it go
    assert (tmp_path / "entry.npz.lock").is_file() and not path.exists()


# --- the LR-frame cache ---------------------------------------------------------------------------
def one_frame():
    from harness.frames import Frame

    return Frame("f0", np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8), "test")


BUILDER = r"""
import hashlib, os, sys, time
from pathlib import Path
import numpy as np
from harness import frames
log, barrier = Path(sys.argv[1]), Path(sys.argv[2])
real = frames.downscale

def counted(*args, **kwargs):
    with open(log, "a") as fh:
        fh.write(f"{os.getpid()}\n")
    time.sleep(0.3)  # a slow build: the other run asks for the entry while this one builds it
    return real(*args, **kwargs)

frames.downscale = counted  # the MATLAB resize of each frame: what an entry's build does
frame = frames.Frame("f0", np.random.default_rng(0).integers(0, 255, (1080, 1920, 3), dtype=np.uint8), "test")
(barrier / str(os.getpid())).touch()
deadline = time.time() + 60
while len(list(barrier.iterdir())) < 2 and time.time() < deadline:  # both runs start together
    time.sleep(0.005)
out = frames.lr_inputs([frame], 4)
print(hashlib.sha256(out[0].tobytes()).hexdigest())
"""


@needs_flock
def test_two_processes_building_one_lr_entry_build_it_once(tmp_path):
    from harness.frames import lr_input

    cache, barrier, log = tmp_path / "cache", tmp_path / "barrier", tmp_path / "builds.log"
    barrier.mkdir()
    env = dict(os.environ, HARNESS_CACHE=str(cache))
    children = [run_python(BUILDER, log, barrier, env=env) for _ in range(2)]
    results = [child.communicate(timeout=120) for child in children]
    for child, (_, err) in zip(children, results):
        assert child.returncode == 0, err
        assert "damaged" not in err  # neither read the other's half-written file
    want = hashlib.sha256(lr_input(one_frame(), 4).tobytes()).hexdigest()
    assert [out.strip() for out, _ in results] == [want, want]
    assert len(log.read_text().split()) == 1  # one build: the second run waited, then read the first's file
    files = sorted(p.name for p in (cache / "frames").iterdir())
    assert len([f for f in files if f.endswith(".npz")]) == 1 and stray_temp_files(cache) == []


def test_a_garbage_lr_entry_is_rebuilt_with_a_warning(tmp_path, monkeypatch):
    from harness.frames import lr_input, lr_inputs

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    frame = one_frame()
    lr_inputs([frame], 4)
    (cached,) = (tmp_path / "frames").glob("lr_x4_rgb8_*.npz")
    cached.write_bytes(b"\x93NUMPY garbage, not a zip")
    with pytest.warns(UserWarning, match="damaged LR-frame cache") as caught:
        again = lr_inputs([frame], 4)
    assert len(caught) == 1 and str(cached) in str(caught[0].message)
    np.testing.assert_array_equal(again[0], lr_input(frame, 4))  # the same as a fresh build
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(lr_inputs([frame], 4)[0], again[0])  # the rebuilt file reads back


KILLED = r"""
import os, signal, sys
from harness.cachefile import atomic_path
with atomic_path(sys.argv[1]) as tmp:
    with open(tmp, "wb") as fh:
        fh.write(b"PK\x03\x04 half an npz")
        fh.flush()
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.skipif(not hasattr(__import__("signal"), "SIGKILL"), reason="no SIGKILL here")
def test_a_killed_writer_leaves_a_temp_file_that_breaks_nothing(tmp_path, monkeypatch):
    from harness.frames import lr_input, lr_inputs

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    frame = one_frame()
    first = lr_inputs([frame], 4)
    (cached,) = (tmp_path / "frames").glob("lr_x4_rgb8_*.npz")
    before = cached.read_bytes()
    child = run_python(KILLED, cached)
    child.communicate(timeout=60)
    assert child.returncode == -9  # really killed, half way through its write
    assert len(stray_temp_files(tmp_path)) == 1 and cached.read_bytes() == before
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "damaged" warning: the entry was never touched
        np.testing.assert_array_equal(lr_inputs([frame], 4)[0], first[0])
    cached.unlink()  # the same with no entry at all: the stray file is not mistaken for one
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(lr_inputs([frame], 4)[0], lr_input(frame, 4))


# --- the ONNX export cache ------------------------------------------------------------------------
def ort_output(path, channels=1):
    from harness.ortsession import ort_session

    x = np.random.default_rng(5).random((1, channels, 12, 16), dtype=np.float32)
    sess = ort_session(path)
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


@pytest.mark.torch
def test_a_truncated_onnx_entry_is_rebuilt_with_one_warning(tmp_path):
    from harness.export import exported_onnx
    from harness.models import resolve

    model = resolve("eSR-MAX_s2_K3_C2", weights="init")
    path, form = exported_onnx(model, "naive", tmp_path)
    record = path.with_name(path.name + ".sha256")
    assert record.read_text().split()[0] == hashlib.sha256(path.read_bytes()).hexdigest()
    want = ort_output(path)
    mtime = path.stat().st_mtime_ns
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert exported_onnx(model, "naive", tmp_path) == (path, form) and path.stat().st_mtime_ns == mtime
    path.write_bytes(path.read_bytes()[:200])  # a killed copy, a full disk
    with pytest.warns(UserWarning) as caught:
        assert exported_onnx(model, "naive", tmp_path) == (path, form)
    assert [str(w.message) for w in caught] == [f"{path}: damaged cache entry (sha256 mismatch: {path.name}); "
                                                f"rebuilding it"]
    np.testing.assert_array_equal(ort_output(path), want)  # the same graph as the fresh export
    record.unlink()  # an entry without its record is not trusted either
    with pytest.warns(UserWarning, match="no sha256 record"):
        exported_onnx(model, "naive", tmp_path)
    assert check_record(path) is None and stray_temp_files(tmp_path) == []


@pytest.mark.torch
def test_an_int8_entry_is_rebuilt_when_damaged_or_its_fp32_source_changes(tmp_path):
    from harness.export import export_onnx, exported_onnx
    from harness.models import resolve
    from harness.quantize import int8_onnx

    model = resolve("eSR-MAX_s2_K3_C2", weights="init")
    fp32, _ = exported_onnx(model, "naive", tmp_path)
    qdq, _ = int8_onnx(model, fp32)
    want = ort_output(qdq)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mtime = qdq.stat().st_mtime_ns
        assert int8_onnx(model, fp32)[0] == qdq and qdq.stat().st_mtime_ns == mtime
    qdq.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match=f"{qdq.name}: damaged cache entry \\(sha256 mismatch"):
        assert int8_onnx(model, fp32)[0] == qdq
    np.testing.assert_array_equal(ort_output(qdq), want)
    model.module.filter.weight.data += 1  # another FP32 graph under the same name (as in an export folder)
    export_onnx(model.module, fp32, model_id=model.id)
    with pytest.warns(UserWarning, match=f"sha256 mismatch: {fp32.name}"):
        int8_onnx(model, fp32)
    assert check_record(qdq) is None and not np.array_equal(ort_output(qdq), want)
    assert [p.name for p in tmp_path.rglob("*") if ".prep." in p.name] == [] and stray_temp_files(tmp_path) == []


# --- data fetch --url for a set without a pinned hash ----------------------------------------------
def image_zip(path, names):
    from PIL import Image

    with zipfile.ZipFile(path, "w") as zf:
        for i, name in enumerate(names):
            buf = io.BytesIO()
            Image.fromarray(np.full((10, 12, 3), 20 * i, np.uint8)).save(buf, format="PNG")
            zf.writestr(name, buf.getvalue())
    return path


def test_fetch_url_of_an_unpinned_set_prints_its_sha256_and_keeps_nothing_else(tmp_path, capsys):
    archive = image_zip(tmp_path / "manga.zip", ["Manga109/HR/AisazuNihaIrarenai.png", "Manga109/HR/Akuhamu.png"])
    root = tmp_path / "data"
    assert main(["data", "fetch", "Manga109", "--url", archive.as_uri(), "--data", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert f"sha256:{hashlib.sha256(archive.read_bytes()).hexdigest()}" in out
    assert sorted(p.name for p in (root / "Manga109" / "HR").iterdir()) == ["AisazuNihaIrarenai.png", "Akuhamu.png"]
    assert sorted(p.name for p in root.iterdir()) == ["Manga109"]  # nothing unverifiable is kept


@pytest.mark.parametrize("damage", ["not an archive", "truncated"])
def test_a_bad_unpinned_download_leaves_no_stray_file(tmp_path, capsys, damage):
    good = image_zip(tmp_path / "good.zip", [f"HR/p{i}.png" for i in range(3)]).read_bytes()
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"<html>404</html>" if damage == "not an archive" else good[:len(good) // 2])
    root = tmp_path / "data"
    assert main(["data", "fetch", "Manga109", "--url", bad.as_uri(), "--data", str(root), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad.as_uri()} (bad.zip)") and "download was removed" in err[0]
    assert "--url" in err[0]  # the fix
    assert list(root.iterdir()) == []  # no download, no half-filled set folder


def test_a_pinned_archive_that_fails_half_way_leaves_no_half_set(tmp_path, monkeypatch):
    from harness import datasets
    from harness.errors import HarnessError

    archive = image_zip(tmp_path / "set.zip", [f"b/HR/p{i}.png" for i in range(3)])
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as zf:
        info = zf.infolist()[1]
    data[info.header_offset + 30 + len(info.filename) + 40] ^= 0xFF  # the second image's bytes: a CRC error
    archive.write_bytes(bytes(data))
    digest = hashlib.sha256(bytes(data)).hexdigest()
    monkeypatch.setitem(datasets.SOURCES, "Set5", datasets.Source(archive.as_uri(), f"sha256:{digest}", "b/HR/*"))
    root = tmp_path / "data"
    with pytest.raises(HarnessError) as err:
        datasets.fetch("Set5", root, progress=False)
    assert "\n" not in str(err.value) and str(root / ".downloads" / "set.zip") in str(err.value)
    assert not (root / "Set5").exists()  # the first image was extracted, then all of it was taken back


@pytest.mark.torch
def test_classsr_parts_are_rebuilt_when_one_is_damaged(tmp_path):
    from harness.export import cached_classsr_parts
    from harness.models import classsr

    module = classsr.build_module()
    paths = cached_classsr_parts(module, tmp_path)
    assert all(check_record(p) is None for p in paths.values())
    want = ort_output(paths["branch1"])
    mtimes = {k: p.stat().st_mtime_ns for k, p in paths.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cached_classsr_parts(module, tmp_path) == paths
    assert {k: p.stat().st_mtime_ns for k, p in paths.items()} == mtimes  # a hit exports nothing
    paths["branch1"].write_bytes(paths["branch1"].read_bytes()[:64])
    with pytest.warns(UserWarning, match=f"{paths['branch1'].name}: damaged cache entry") as caught:
        cached_classsr_parts(module, tmp_path)
    assert len(caught) == 1 and all(check_record(p) is None for p in paths.values())
    np.testing.assert_array_equal(ort_output(paths["branch1"]), want)


# --- the imported weights store -------------------------------------------------------------------
def test_an_imported_weights_file_damaged_since_is_refused_with_the_fix(tmp_path, monkeypatch):
    from harness.errors import HarnessError
    from harness.weights import bsrn_official_dir, bsrn_official_file, official_dir, official_file

    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    official_dir().mkdir(parents=True)
    (official_dir() / "eSR-TM_s2_K7_C4.model").write_bytes(b"flipped bits")
    with pytest.raises(HarnessError, match="does not match its SHA-256") as err:
        official_file("eSR-TM_s2_K7_C4")
    assert "eSR-TM_s2_K7_C4.model" in str(err.value) and "zoo import-esr" in str(err.value)
    bsrn_official_dir().mkdir(parents=True)
    (bsrn_official_dir() / "net_g_BSRN_x2.pth").write_bytes(b"")
    with pytest.raises(HarnessError, match="zoo import-bsrn"):
        bsrn_official_file("net_g_BSRN_x2")
