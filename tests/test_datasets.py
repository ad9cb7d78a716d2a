import hashlib
import io
import tarfile
import zipfile

import numpy as np
import pytest

from conftest import write_png
from harness import datasets
from harness.datasets import Source, available_sets, canonical_set_name, embedded_set, fetch, find_set, resolve_sets
from harness.errors import HarnessError
from harness.imageio import load_rgb


def test_layout_discovery_case_and_aliases(tmp_path, rng):
    write_png(tmp_path / "set5" / "HR" / "a.png", rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    write_png(tmp_path / "B100" / "HR" / "b.png", rng.integers(0, 255, (20, 20, 3), dtype=np.uint8))
    assert available_sets(tmp_path) == ["Set5", "BSD100"]
    assert canonical_set_name("set14") == "Set14" and canonical_set_name("b100") == "BSD100"
    s = find_set(tmp_path, "BSD100")
    assert s.name == "BSD100" and len(s) == 1
    assert [n for n, _ in s] == ["b"]


def test_greyscale_rgba_palette_bmp_jpg_are_read_as_rgb(tmp_path, rng):
    from PIL import Image

    hr = tmp_path / "Set14" / "HR"
    hr.mkdir(parents=True)
    Image.fromarray(rng.integers(0, 255, (16, 18), dtype=np.uint8)).save(hr / "grey.png")
    rgba = rng.integers(0, 255, (16, 18, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(hr / "alpha.png")
    Image.fromarray(rng.integers(0, 255, (16, 18, 3), dtype=np.uint8)).convert("P").save(hr / "pal.png")
    Image.fromarray(rng.integers(0, 255, (16, 18, 3), dtype=np.uint8)).save(hr / "img.bmp")
    Image.fromarray(rng.integers(0, 255, (16, 18, 3), dtype=np.uint8)).save(hr / "img2.jpg")
    images = dict(find_set(tmp_path, "Set14"))
    assert set(images) == {"grey", "alpha", "pal", "img", "img2"}
    for img in images.values():
        assert img.shape == (16, 18, 3) and img.dtype == np.uint8
    g = images["grey"]
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 1], g[..., 2])
    np.testing.assert_array_equal(images["alpha"], rgba[..., :3])


def test_unreadable_image_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(HarnessError, match="broken.png: cannot read this image"):
        load_rgb(bad)


def test_missing_set_gives_one_line_with_fetch_hint(tmp_path):
    with pytest.raises(HarnessError) as err:
        find_set(tmp_path, "Urban100")
    msg = str(err.value)
    assert "\n" not in msg
    assert f"{tmp_path}/Urban100/HR/" in msg and "python -m harness data fetch Urban100" in msg
    with pytest.raises(HarnessError, match="manga109.org"):
        find_set(tmp_path, "Manga109")
    with pytest.raises(HarnessError) as err:  # a set of the user's own: where it goes, and that it cannot be fetched
        find_set(tmp_path, "MySet")
    assert str(err.value) == (f"test set MySet not found: put its HR images (png/bmp/jpg) in {tmp_path}/MySet/HR/; "
                              "it is not one of the standard sets (Set5, Set14, BSD100, Urban100, Manga109, DIV2K), "
                              "so it cannot be fetched")
    with pytest.raises(HarnessError, match="no test set found"):
        resolve_sets(tmp_path, None)


def test_empty_hr_folder_is_an_error(tmp_path):
    (tmp_path / "Set5" / "HR").mkdir(parents=True)
    with pytest.raises(HarnessError, match="holds no png/bmp/jpg"):
        find_set(tmp_path, "Set5")


def test_embedded_set_is_real_images_and_labelled():
    s = embedded_set()
    assert s.name == "embedded" and not s.standard
    assert len(s) >= 10
    sizes = [img.shape for _, img in s]
    assert all(len(sh) == 3 and sh[2] == 3 for sh in sizes)
    assert resolve_sets(None, None)[0].name == "embedded"


def _archive(tmp_path, kind, rng):
    payload = {}
    for i in range(3):
        buf = io.BytesIO()
        from PIL import Image

        Image.fromarray(rng.integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(buf, format="PNG")
        payload[f"bench/TestSet/HR/img{i}.png"] = buf.getvalue()
    payload["bench/TestSet/LR/x2/img0.png"] = b"ignored"
    path = tmp_path / f"archive.{kind}"
    if kind == "zip":
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in payload.items():
                zf.writestr(name, data)
    else:
        with tarfile.open(path, "w") as tf:
            for name, data in payload.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_fetch_from_file_url_checks_hash_and_extracts_hr(tmp_path, monkeypatch, rng, kind):
    archive = _archive(tmp_path, kind, rng)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setitem(datasets.SOURCES, "Set5", Source(archive.as_uri(), f"sha256:{digest}", "bench/TestSet/HR/*"))
    root = tmp_path / "data"
    dest = fetch("Set5", root, progress=False)
    assert dest == root / "Set5" / "HR"
    assert sorted(p.name for p in dest.iterdir()) == ["img0.png", "img1.png", "img2.png"]
    assert len(find_set(root, "Set5")) == 3
    # cached: a second fetch works without the source
    archive.unlink()
    assert fetch("Set5", root, progress=False) == dest


def test_fetch_rejects_a_wrong_hash(tmp_path, monkeypatch, rng):
    archive = _archive(tmp_path, "zip", rng)
    monkeypatch.setitem(datasets.SOURCES, "Set5", Source(archive.as_uri(), "sha256:" + "0" * 64, "bench/TestSet/HR/*"))
    with pytest.raises(HarnessError, match="does not match the pinned hash"):
        fetch("Set5", tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "Set5").exists()


def test_fetch_errors(tmp_path):
    with pytest.raises(HarnessError, match="unknown test set"):
        fetch("Set99", tmp_path, progress=False)
    with pytest.raises(HarnessError, match="cannot be downloaded"):
        fetch("Manga109", tmp_path, progress=False)


def test_every_downloadable_source_pins_a_hash():
    for name, src in datasets.SOURCES.items():
        if src.url:
            algo, _, hexdigest = src.known_hash.partition(":")
            assert algo in ("sha256", "md5") and len(hexdigest) == {"sha256": 64, "md5": 32}[algo], name


def test_a_decompression_bomb_is_one_line(tmp_path, monkeypatch):
    from PIL import Image

    from harness.imageio import load_rgb

    path = tmp_path / "bomb.png"
    Image.new("RGB", (64, 64)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 pixels is then over PIL's bomb limit (2x)
    with pytest.raises(HarnessError, match="refused as a decompression bomb") as err:
        load_rgb(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value) and "MAX_IMAGE_PIXELS" in str(err.value)
