"""Official eSR weights: SHA-256 manifest, import from a folder or zip, --weights official."""
import shutil
import zipfile

import numpy as np
import pytest

from conftest import SHARED
from harness.cli import main
from harness.errors import HarnessError
from harness.models import resolve
from harness.models.esr import official_name
from harness.models.pools import pool_ids
from harness.weights import import_esr, manifest, official_dir, official_file

MODEL_FILES = SHARED / "esr-official" / "model-files"
PICK = ("eSR-TM_s2_K7_C4", "FSRCNN_s3_D56_S12_M4", "Bicubic_s3")


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def model_files():
    if not MODEL_FILES.is_dir():
        pytest.skip(f"needs the official eSR weights in {MODEL_FILES} (absent here)")
    return MODEL_FILES


def test_manifest_covers_exactly_the_design_space():
    files = manifest()
    assert len(files) == 1185
    assert all(len(v["sha256"]) == 64 and v["bytes"] > 0 for v in files.values())
    expected = {official_name(i.replace("Bicubic_s", "eSR-Bicubic_s")) for i in pool_ids("all")}
    assert set(files) == expected


def test_wrong_hash_and_unknown_files_are_not_imported(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "eSR-MAX_s2_K3_C1.model").write_bytes(b"tampered")
    (src / "my_model.model").write_bytes(b"whatever")
    report = import_esr(src)
    assert report.imported == [] and report.unknown == ["my_model"]
    assert len(report.mismatched) == 1 and report.mismatched[0].startswith("eSR-MAX_s2_K3_C1")
    assert not (official_dir() / "eSR-MAX_s2_K3_C1.model").exists()
    assert "wrong SHA-256" in report.summary()


@pytest.mark.torch
def test_missing_official_weights_say_how_to_import():
    with pytest.raises(HarnessError, match="zoo import-esr"):
        official_file("eSR-TM_s2_K7_C4")
    with pytest.raises(HarnessError, match="not imported"):
        resolve("eSR-TM_s2_K7_C4", weights="official")
    # bicubic baselines have no learned weights: any choice is fine
    assert resolve("Bicubic_s2", weights="official").weights == "none"
    with pytest.raises(HarnessError, match="no such file or folder"):
        import_esr("/nonexistent/eSR")


@pytest.mark.torch
def test_import_folder_then_official_weights_reproduce_parity(tmp_path, model_files):
    src = tmp_path / "pick" / "model-files"
    src.mkdir(parents=True)
    for stem in PICK:
        shutil.copy(model_files / f"{stem}.model", src)
    report = import_esr(tmp_path / "pick")  # searched recursively
    assert sorted(report.imported) == sorted(PICK)
    assert sorted(import_esr(src).unchanged) == sorted(PICK)  # idempotent
    model = resolve("eSR-TM_s2_K7_C4", weights="official")
    assert model.weights == "official"
    fixture = SHARED / "esr-official" / "parity" / "eSR-TM_s2_K7_C4.npz"
    if fixture.is_file():
        data = np.load(fixture)
        np.testing.assert_allclose(model(data["lr"]), data["sr"], atol=1e-5)
    assert resolve("eSR-Bicubic_s3", weights="official").weights == "official"


def test_import_zip_archive_like_the_repository(tmp_path, model_files):
    archive = tmp_path / "eSR-main.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for stem in PICK[:2]:
            zf.write(model_files / f"{stem}.model", f"eSR-main/model-files/{stem}.model")
        zf.writestr("eSR-main/README.md", "readme")
    assert sorted(import_esr(archive).imported) == sorted(PICK[:2])
    assert official_file(PICK[0]).is_file()


def test_cli_import_reports_and_fails_on_mismatch(tmp_path, capsys):
    src = tmp_path / "src"
    src.mkdir()
    (src / "eSR-MAX_s2_K3_C1.model").write_bytes(b"tampered")
    assert main(["zoo", "import-esr", str(src)]) == 1
    assert "1 with a wrong SHA-256" in capsys.readouterr().out
    assert main(["zoo", "import-esr", str(tmp_path / "nothing-here")]) == 2
