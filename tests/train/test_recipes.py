"""harness.train.recipes: the per-family recipes, their per-member overrides, the generic recipe
for families without one, and how they fill the unset settings."""
from __future__ import annotations

from harness import train

from .helpers import ABPN, BSRN


def test_family_recipe_fills_unset_settings():
    s = train.for_family(train.Settings(data=["x"]), "eSR-TM")
    assert (s.steps, s.batch, s.lr) == (train.RECIPES["eSR-TM"]["steps"], train.RECIPES["eSR-TM"]["batch"],
                                        train.RECIPES["eSR-TM"]["lr"])
    s = train.for_family(train.Settings(data=["x"], steps=7, batch=3, lr=0.1), "FSRCNN")
    assert (s.steps, s.batch, s.lr) == (7, 3, 0.1)


def test_recipes_for_rgb_families_and_the_generic_fallback():
    s = train.for_family(train.Settings(data=["x"]), "ABPN")
    assert (s.steps, s.batch, s.lr) == (20000, 16, 1e-3)
    assert train.patch_for(train.Settings(data=[]), ABPN, 2) == 128  # the authors' 64 LR pixels
    assert train.patch_for(train.Settings(data=[]), "BSRN_s3", 3) == 144  # BasicSR's 48 LR pixels
    assert train.patch_for(train.Settings(data=[], patch=32), BSRN, 2) == 32
    s = train.for_family(train.Settings(data=["x"], lr=0.1), "SomeNewFamily")
    assert (s.steps, s.batch, s.lr) == (15000, 16, 0.1)
    assert train.patch_for(train.Settings(data=[]), "x:Y", 3, "SomeNewFamily") == 63


def test_loss_border_comes_from_the_recipe():
    """auto for eSR-MAX and eSR-TR; eSR-TM and the CNNs (measured worse cropped) and the rest: off."""
    base = train.Settings(data=["x"])
    for family in ("eSR-MAX", "eSR-TR"):
        assert train.for_family(base, family).loss_border == "auto", family
    for family in ("eSR-TM", "eSR-CNN", "ESPCN", "FSRCNN", "ABPN", "BSRN", "no-such-family"):
        assert train.for_family(base, family).loss_border == "off", family
    assert train.for_family(train.Settings(data=["x"], loss_border="3"), "eSR-TM").loss_border == "3"
    assert train.recipe_record("eSR-TR", 2)["loss_border"] == "auto"


def test_by_model_recipe_overrides_match_ids_and_are_recorded():
    """Recipes may set keys per member (the largest ESPCN/FSRCNN train 60k steps); others keep the family's."""
    assert train.recipe_for("ESPCN", "ESPCN_s2_D34_S32")["steps"] == 60000
    assert train.recipe_for("ESPCN", "ESPCN_s2_D34_S32")["matched"] == "ESPCN_s*_D34_S32"
    assert train.recipe_for("ESPCN", "ESPCN_s2_D0_S3")["steps"] == 15000
    assert "matched" not in train.recipe_for("ESPCN", "ESPCN_s2_D0_S3")
    assert "by_model" not in train.recipe_for("FSRCNN", "FSRCNN_s4_D16_S12_M4")
    for mid in ("FSRCNN_s4_D16_S12_M4", "FSRCNN_s4_D36_S12_M4", "FSRCNN_s3_D56_S12_M4"):  # ClassSR's branches too
        assert train.recipe_for("FSRCNN", mid)["steps"] == 60000
    assert train.recipe_for("FSRCNN", "FSRCNN_s2_D6_S1_M1")["steps"] == 15000
    assert train.recipe_for("FSRCNN")["steps"] == 15000  # no id: the family's own keys
    assert train.recipe_for("eSR-CNN", "eSR-CNN_s4_C2_D1_S3")["steps"] == 60000
    assert train.recipe_for("eSR-CNN", "eSR-CNN_s4_C8_D9_S15")["steps"] == 15000
    s = train.Settings(data=["x"])
    assert train.for_family(s, "FSRCNN", "FSRCNN_s2_D56_S12_M4").steps == 60000
    assert train.for_family(s, "FSRCNN", "FSRCNN_s2_D6_S1_M1").steps == 15000
    assert train.for_family(train.Settings(data=["x"], steps=7), "FSRCNN", "FSRCNN_s2_D56_S12_M4").steps == 7
    # a Ghost fine-tune takes its base member's schedule
    assert train.recipe_for("GhostSR", "Ghost-FSRCNN_s2_D56_S12_M4")["steps"] == 60000
