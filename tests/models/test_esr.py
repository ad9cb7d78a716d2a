"""eSR model families: official weights load strictly and reproduce the authors' output,
shapes, init, the design-space pools, and the user errors of weight loading."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from conftest import MODEL_FILES, OFFICIAL, PARITY

try:
    import torch
except ImportError:  # no PyTorch here (a device venv): the tests marked `torch` skip, the others run
    torch = None

from harness.errors import HarnessError
from harness.imresize import upscale
from harness.models import esr, id_scale, pools, resolve


def need_official():
    if not MODEL_FILES.is_dir():
        pytest.skip(f"official eSR weights not found at {MODEL_FILES} (development data, ../shared)")


def official_file(model_id: str) -> Path:
    return MODEL_FILES / f"{esr.official_name(model_id)}.model"


# --- parity with the official implementation -------------------------------------------------
@pytest.mark.torch
@pytest.mark.shared
@pytest.mark.parametrize("fixture", PARITY or [None], ids=[p.stem for p in PARITY] or ["no-shared"])
def test_official_parity(fixture):
    need_official()
    if fixture is None:
        pytest.skip(f"no parity fixtures in {OFFICIAL / 'parity'}")
    model_id = esr.official_id(fixture.stem)
    module = esr.load_official(model_id, official_file(model_id))
    data = np.load(fixture)
    with torch.no_grad():
        sr = module(torch.from_numpy(data["lr"])[None, None])[0, 0].numpy()
    assert sr.shape == data["sr"].shape
    assert np.abs(sr - data["sr"]).max() <= 1e-5


@pytest.mark.torch
@pytest.mark.shared
def test_every_official_file_loads_strictly():
    """All 1185 published files fit the architecture their name says (about 4 s)."""
    need_official()
    for path in sorted(MODEL_FILES.glob("*.model")):
        module = esr.load_official(esr.official_id(path.stem), path)
        assert all(p.dtype == torch.float32 for p in module.state_dict().values()), path.name


@pytest.mark.torch
@pytest.mark.shared
def test_official_bicubic_kernel_is_the_published_one():
    need_official()
    for s in (2, 3, 4):
        stored = torch.load(str(official_file(f"eSR-Bicubic_s{s}")), map_location="cpu")["net.weight"]
        assert stored.dtype == torch.float16
        ours = torch.from_numpy(esr.official_bicubic_kernel(s)).half()[None, None]
        assert torch.equal(stored, ours)


# --- shapes -----------------------------------------------------------------------------------
SHAPE_TEMPLATES = [
    "eSR-MAX_s{s}_K3_C1", "eSR-MAX_s{s}_K7_C4", "eSR-TM_s{s}_K5_C3", "eSR-TR_s{s}_K7_C2",
    "eSR-CNN_s{s}_C2_D1_S3", "eSR-CNN_s{s}_C8_D9_S15", "ESPCN_s{s}_D0_S3", "ESPCN_s{s}_D4_S6",
    "FSRCNN_s{s}_D6_S1_M1", "FSRCNN_s{s}_D19_S3_M4", "eSR-Bicubic_s{s}",
]


@pytest.mark.torch
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_output_shapes(scale):
    x = torch.rand(2, 1, 7, 10)
    for template in SHAPE_TEMPLATES:
        model_id = template.format(s=scale)
        with torch.no_grad():
            y = esr.build_module(model_id)(x)
        assert tuple(y.shape) == (2, 1, 7 * scale, 10 * scale), model_id


@pytest.mark.torch
def test_registry_builds_initialised_upscalers():
    up = resolve("eSR-TM_s3_K5_C2")
    assert (up.family, up.scale, up.input_space, up.weights) == ("eSR-TM", 3, "y", "init")
    assert up(np.random.rand(6, 5).astype(np.float32)).shape == (18, 15)
    with pytest.raises(HarnessError, match="x3 model"):
        resolve("eSR-TM_s3_K5_C2", scale=2)


@pytest.mark.parametrize("bad", ["eSR-MAX_s2_K7", "eSR-MAX_s2_K4_C3", "eSR-CNN_s2_C2_D0_S3", "FSRCNN_s2_D6_S1"])
def test_malformed_ids_are_unknown(bad):
    with pytest.raises(HarnessError, match="unknown model id"):
        resolve(bad)
    with pytest.raises(HarnessError, match="unknown model id"):
        esr.build_module(bad)


@pytest.mark.torch
def test_modules_pickle():
    module = esr.build_module("eSR-CNN_s2_C2_D1_S3")
    clone = pickle.loads(pickle.dumps(module))
    x = torch.rand(1, 1, 5, 5)
    with torch.no_grad():
        assert torch.equal(clone(x), module(x))


# --- initialisation ---------------------------------------------------------------------------
@pytest.mark.torch
def test_init_sets_centre_tap():
    for model_id, centre in (("eSR-MAX_s2_K5_C3", 2), ("eSR-TM_s3_K3_C4", 1), ("eSR-TR_s4_K7_C2", 3)):
        w = esr.build_module(model_id).filter.weight
        assert torch.all(w[:, 0, centre, centre] == 1.0), model_id
        off = w.clone()
        off[:, 0, centre, centre] = 0.0
        assert off.abs().sum() > 0 and not torch.any(off == 1.0), model_id  # Xavier elsewhere
    cnn = esr.build_module("eSR-CNN_s2_C4_D3_S6").filter
    for index, centre in ((0, 2), (2, 1), (4, 1)):
        assert torch.all(cnn[index].weight[:, 0, centre, centre] == 1.0)


@pytest.mark.torch
def test_init_of_official_bicubic_is_misaligned_at_x3_only():
    """A horizontal ramp shows the grid: x2/x4 land on MATLAB's, x3 is 1/6 LR pixel (half an HR pixel) low."""
    lr = np.tile(np.arange(24, dtype=np.float64), (20, 1))
    for s, shift in ((2, 0.0), (3, -1.0 / 6.0), (4, 0.0)):
        up = resolve(f"eSR-Bicubic_s{s}")
        out = up(lr.astype(np.float32)).astype(np.float64)
        ref = upscale(lr, s)
        inner = (slice(4 * s, -4 * s),) * 2
        assert np.abs(out - ref - shift)[inner].max() < 1e-4, s
    assert "alignment" in resolve("eSR-Bicubic_s3").notes
    assert "alignment" not in resolve("eSR-Bicubic_s2").notes


# --- weight-loading errors --------------------------------------------------------------------
@pytest.mark.torch
def test_wrong_architecture_names_the_file(tmp_path):
    path = tmp_path / "eSR-MAX_s2_K3_C1.model"
    torch.save(esr.build_module("eSR-MAX_s2_K3_C1").state_dict(), str(path))
    assert esr.load_official("eSR-MAX_s2_K3_C1", path) is not None
    for other in ("eSR-MAX_s2_K3_C2", "eSR-TM_s2_K3_C1", "ESPCN_s2_D0_S3"):
        with pytest.raises(HarnessError, match=r"eSR-MAX_s2_K3_C1\.model.*not a " + other):
            esr.load_official(other, path)


@pytest.mark.torch
@pytest.mark.shared
def test_wrong_architecture_official_file():
    need_official()
    path = official_file("FSRCNN_s2_D6_S1_M1")
    with pytest.raises(HarnessError, match="FSRCNN_s2_D6_S1_M1.model"):
        esr.load_official("FSRCNN_s2_D6_S1_M4", path)


@pytest.mark.torch
def test_unreadable_or_missing_file_names_it(tmp_path):
    junk = tmp_path / "junk.model"
    junk.write_bytes(b"not a zip file")
    with pytest.raises(HarnessError, match="junk.model"):
        esr.load_official("eSR-MAX_s2_K3_C1", junk)
    with pytest.raises(HarnessError, match="absent.model"):
        esr.load_official("eSR-MAX_s2_K3_C1", tmp_path / "absent.model")
    listy = tmp_path / "list.model"
    torch.save([1, 2], str(listy))
    with pytest.raises(HarnessError, match="list.model"):
        esr.load_official("eSR-MAX_s2_K3_C1", listy)


# --- pools ------------------------------------------------------------------------------------
@pytest.mark.torch
def test_pool_counts():
    everything = pools.pool_ids("all")
    assert len(everything) == len(set(everything)) == 1185
    for s in (2, 3, 4):
        at_s = pools.scale_pool(s)
        assert len(at_s) == len(set(at_s)) == 395
        assert all(id_scale(i) == s for i in at_s)
        assert sum(1 for i in everything if esr.PATTERNS["eSR-MAX"].fullmatch(i) and f"_s{s}_" in i) == 48
    default, front = pools.pool_ids("default"), pools.pool_ids("paper-front")
    assert 35 <= len(default) <= 45 and set(default) <= set(everything)
    assert set(front) <= set(default)
    assert "Bicubic_s2" in front and all("_s2" in i for i in front)
    families = {(resolve(i).family, resolve(i).scale) for i in default}
    assert families == {(f, s) for f in ("Bicubic",) + esr.FAMILIES[:-1] for s in (2, 3, 4)}
    with pytest.raises(HarnessError, match="unknown model pool 'nope'"):
        pools.pool_ids("nope")


@pytest.mark.shared
def test_pool_is_the_published_file_set():
    need_official()
    published = {p.stem for p in MODEL_FILES.glob("*.model")}
    ours = {esr.official_name("eSR-" + i if i.startswith("Bicubic_") else i) for i in pools.pool_ids("all")}
    assert ours == published
