"""The training recipes: per-family learning rate, batch, steps, patch, loss, loss border and Adam betas
(:data:`RECIPES`, :data:`GENERIC_RECIPE` for families without one), per-member overrides
(``by_model``) and GhostSR's recipe taken from its base network's (``from_base``)."""
from __future__ import annotations

import fnmatch
from typing import Dict, Optional, Tuple

from .finetune import init_source

DEFAULT_PATCH = 64    # HR pixels; at x3 the default becomes 63 (the multiple of 3 below)
# The per-family recipe that the shipped default pool was trained with (--lr/--batch/--steps
# override it). The attention-style eSR-MAX/TM/TR nets have a few hundred to a few thousand
# weights: a larger batch and a 5x larger learning rate reach in 15k steps what batch 16 at 1e-3
# reached in 20k minus 0.3 dB on Set14 (eSR-TM_s2_K7_C4: 31.28 vs 31.16 dB at 10k steps). eSR-CNN
# also learns faster at 4e-3 (eSR-CNN_s2_C8_D9_S15: Set5 35.36 dB after 2000 steps against 34.86
# at 1e-3); ESPCN (sigmoid output) did not (ESPCN_s2_D34_S32: Set5 28.9 dB after 2000 steps at
# 4e-3), so it and FSRCNN keep the usual 1e-3. The one-layer eSR-MAX/TM/TR are near-linear
# estimators: under L1 they settle on a median-like fit that PSNR (an L2 measure) rates far lower,
# so they train on MSE (eSR-MAX_s2_K3_C5: Set5 33.71 dB after 1000 steps on MSE, against 33.45 dB
# after 15000 on L1; eSR-TR_s2_K5_C2: 34.50 against 33.99 after 3000). The small CNNs did the same
# on L1 (Set14 against the official weights: eSR-CNN_s*_C2_D1_S3 -0.46 to -0.68 dB, FSRCNN_s2_D6_S1_M1
# -1.66 dB), so the eSR pool's CNN families train on MSE too; ABPN, BSRN and the rest keep L1.
# loss_border "auto" (see loss_border()) for the one-layer eSR-MAX and eSR-TR: the outputs whose
# receptive field reaches the patch's zero padding stay out of the loss. With them in, these nets
# (which cannot tell a border from picture) fit the artificial border as hard as the picture:
# eSR-MAX_s2_K3_C3 went from Set14 30.32 dB (0.49 below the official weights) to 30.95 (0.13 above),
# the x2 eSR-TR from -0.23 to -0.08 dB. eSR-TM (7x7 filters: a 3-pixel rim of a 32-pixel LR patch)
# did better on the whole patch (Set14 -0.02 to -0.11 dB from official, -0.06 to -0.25 cropped), and
# keeps it. The CNNs keep the whole patch: they learn to handle zero-padded borders, which the test
# images have too (the protocol crops only `scale` pixels), and cropping cost them (Set5 at equal
# steps: eSR-CNN_s2_C8_D9_S15 35.01 against 35.59 dB at 3k steps, 34.47 against 35.36 at 2k with the
# patch grown to keep the loss area; eSR-CNN_s2_C2_D1_S3 34.71 against 35.00 at 12k;
# ESPCN_s2_D34_S32 stalled at 30.2 dB with it, on L1 or MSE, and reached 34.9 by 2.5k steps without;
# FSRCNN_s4_D6_S1_M1 27.48 against 28.77 at 15k).
RECIPES = {
    "eSR-MAX": {"lr": 5e-3, "batch": 32, "steps": 15000, "loss": "mse", "loss_border": "auto"},
    "eSR-TM": {"lr": 5e-3, "batch": 32, "steps": 15000, "loss": "mse"},
    "eSR-TR": {"lr": 5e-3, "batch": 32, "steps": 15000, "loss": "mse", "loss_border": "auto"},
    # eSR-CNN_s*_C2_D1_S3 (two channels, one hidden layer) also gains from 60k steps: Set14 -0.31 ->
    # -0.07 dB from the official weights at x2 (2 CPU minutes a 15k-step run, 8 for 60k).
    "eSR-CNN": {"lr": 4e-3, "batch": 16, "steps": 15000, "loss": "mse",
                "by_model": {"eSR-CNN_s*_C2_D1_S3": {"steps": 60000}}},
    # The largest ESPCN and FSRCNN (and ClassSR's FSRCNN branches, d = 16/36/56, s = 12, m = 4) are
    # still climbing when a 15k-step cosine ends (Set14 0.58-0.79 dB under the official weights);
    # at 60k steps ESPCN_s*_D34_S32 land 0.10-0.15 dB under them (trained on an H100: ~10 min each,
    # 6 at once; about 32/15/11 CPU minutes at x2/x3/x4 on one core, from the 15k-step times).
    "ESPCN": {"lr": 1e-3, "batch": 16, "steps": 15000, "loss": "mse",
              "by_model": {"ESPCN_s*_D34_S32": {"steps": 60000}}},
    "FSRCNN": {"lr": 1e-3, "batch": 16, "steps": 15000, "loss": "mse",
               "by_model": {"FSRCNN_s*_S12_M4": {"steps": 60000}}},
    # ABPN (Du et al., MAI 2021; NJU-Jet/SR_Mobile_Quantization, options/train/base7.yaml): Adam at
    # 1e-3, batch 16, 64x64 LR patches, L1 (MAE), 600 epochs of 1000 iterations (600k steps) with
    # the rate halved every 120 epochs. Here the same rate, batch and LR patch (``lr_patch``: the
    # HR patch is 64 x scale), our cosine decay, and 20k steps: about 3% of the authors'
    # iterations, scaled to what one CPU core does in about two hours (~0.3 s a step at x3).
    # Expect it to fall short of the published PSNR.
    "ABPN": {"lr": 1e-3, "batch": 16, "steps": 20000, "lr_patch": 64},
    # BSRN (Li et al., NTIRE 2022; xiaom233/BSRN, options/train/train_BSRN_x*.yml): Adam at 1e-3,
    # 48x48 LR patches (gt_size 96/144/192), batch 64 (32 on each of 2 GPUs), cosine decay to 1e-7
    # over 1M iterations, L1. Here batch 16, the same LR patch and cosine decay, and 15k steps:
    # 0.4% of the authors' samples, yet about 2-3 s a step on one CPU core (about 10 hours a model).
    "BSRN": {"lr": 1e-3, "batch": 16, "steps": 15000, "lr_patch": 48},
    # EDSR-baseline (Lim et al. 2017; sanghyun-son/EDSR-PyTorch src/option.py): Adam (0.9, 0.999) at
    # 1e-4 halved every 200k iterations, batch 16, 48x48 LR patches (96/144/192 HR), L1. Here the same
    # rate, batch and LR patch with our cosine decay, and 5000 steps: a short CPU schedule (3.9 s a
    # step at x2 on one core, about 5.5 hours; the authors' 300 epochs are about 60 times more
    # samples). Expect it to fall short of the published PSNR; it is the base GhostSR fine-tunes.
    "EDSR": {"lr": 1e-4, "batch": 16, "steps": 5000, "lr_patch": 48},
    # GhostSR (Nie et al.): a fine-tune of a trained base network (train Ghost-<id> --init-weights
    # shipped|FILE loads <id>'s weights and ghostifies them) with the base network's whole recipe
    # (from_base: rate, loss, patch, batch, steps, betas), as the paper retrains the ghost network
    # (Ghost-EDSR_s2: 5000 steps of 1.2 s on one core, about 1.7 hours; Ghost-FSRCNN_s2_D56_S12_M4:
    # FSRCNN_s*_S12_M4's 60k steps, about 100 minutes). Halving the hidden convs moves the network
    # far from its base: from a 35.47 dB FSRCNN_s2_D56_S12_M4, 2000 steps at 1e-4 on L1 (the first
    # version of this recipe) reached Set5 28.57 dB; at FSRCNN's 1e-3 on MSE, 33.11 after 1500. The
    # Gumbel-softmax temperature anneals from 1.0 to 0.05 (exponentially, per step:
    # GhostConv2d.training_progress); the direction of each layer is its argmax in eval mode and at
    # export.
    "GhostSR": {"lr": 1e-4, "batch": 16, "steps": 2000,
                "from_base": ("lr", "loss", "lr_patch", "betas", "steps", "batch"),
                "note": "fine-tune from the base network's weights (--init-weights) with the base recipe's rate, "
                        "loss, patch, batch and steps; Gumbel-softmax tau annealed exponentially from 1.0 to 0.05 "
                        "over the steps, direction = argmax(logits) in eval and at export"},
    # ClassSR (Kong et al.; XPixelGroup/ClassSR options/train/train_ClassSR_FSRCNN.yml): the classifier
    # alone (fix_SR_module: the module's trainable_parameters) with the module's training_loss (L1 +
    # class + average, 2000:1:6), Adam (0.9, 0.99) at 2e-4, 32x32 LR / 128x128 HR patches, batch 96,
    # 200k iterations, cosine to 1e-7. Here the same rate, betas and patches, batch 16 and 20k steps
    # (1.7% of the authors' samples): a short CPU schedule (0.09 s a step on one core, the frozen
    # branches need no backward: about 30 minutes). The branches start trained
    # (--init-weights branches:D16,D36,D56).
    "ClassSR": {"lr": 2e-4, "batch": 16, "steps": 20000, "lr_patch": 32, "betas": (0.9, 0.99),
                "note": "classifier only (branches frozen); start from trained branches "
                        "(--init-weights branches:D16,D36,D56)"},
}
# Families without a recipe (a newly registered model, a user's package.module:Class) get this
# one, so that adding a model needs no change here; the patch is then DEFAULT_PATCH.
GENERIC_RECIPE = {"lr": 1e-3, "batch": 16, "steps": 15000}
DEFAULT_LR = {family: r["lr"] for family, r in RECIPES.items()}


def recipe_for(family: str, model_id: Optional[str] = None) -> Dict:
    """The family's recipe (:data:`RECIPES`), or :data:`GENERIC_RECIPE` for a family without one.

    ``by_model`` entries (fnmatch pattern -> keys) override the family's keys for matching ids.
    A recipe with ``from_base`` (GhostSR) takes those keys from the recipe of ``model_id``'s base
    network (the registry family's ``base_of``): a Ghost-FSRCNN fine-tunes at FSRCNN's rate and
    loss, a Ghost-EDSR at EDSR's rate and patch. Without ``model_id`` the family's own keys stand.
    """
    recipe = RECIPES.get(family, GENERIC_RECIPE)
    if model_id is not None and recipe.get("by_model"):
        # Members of a family that need their own settings (the largest ESPCN/FSRCNN: a longer
        # schedule), by fnmatch pattern on the id; the first match wins and is named in the record.
        overrides = recipe["by_model"]
        recipe = {k: v for k, v in recipe.items() if k != "by_model"}
        for pattern, changes in overrides.items():
            if fnmatch.fnmatchcase(model_id, pattern):
                recipe.update(changes, matched=pattern)
                break
    if recipe.get("from_base") and model_id is not None:
        from ..models.registry import family_name

        base = init_source(model_id)
        if base != model_id:
            base_family = family_name(base)
            base_recipe = recipe_for(base_family, base)
            recipe = dict(recipe, base=base_family)
            for key in recipe["from_base"]:
                if key in base_recipe:
                    recipe[key] = base_recipe[key]
                else:
                    recipe.pop(key, None)
    return recipe


def default_patch(family: str, scale: int, model_id: Optional[str] = None) -> int:
    """The HR patch when --patch is not given: the recipe's LR patch times the scale, else
    DEFAULT_PATCH rounded down to a multiple of the scale."""
    lr_patch = recipe_for(family, model_id).get("lr_patch")
    return int(lr_patch) * scale if lr_patch else DEFAULT_PATCH // scale * scale


def recipe_record(family: str, scale: int, model_id: Optional[str] = None) -> Dict:
    """The recipe a run started from, for the provenance (--lr/--batch/--steps/--patch may override it)."""
    recipe = recipe_for(family, model_id)
    record = {"name": family if family in RECIPES else "generic", "lr": recipe["lr"], "batch": recipe["batch"],
              "steps": recipe["steps"], "patch": default_patch(family, scale, model_id)}
    if "base" in recipe:
        record["from_base"] = {"family": recipe["base"], "keys": list(recipe["from_base"])}
    if "loss" in recipe:
        record["loss"] = recipe["loss"]
    if "loss_border" in recipe:
        record["loss_border"] = recipe["loss_border"]
    if "betas" in recipe:
        record["betas"] = list(recipe["betas"])
    if "note" in recipe:
        record["note"] = recipe["note"]
    return record


def betas_for(family: str, model_id: Optional[str] = None) -> Tuple[float, float]:
    """Adam's betas of the family's recipe (PyTorch's default, 0.9 and 0.999, unless it says otherwise)."""
    b1, b2 = recipe_for(family, model_id).get("betas", (0.9, 0.999))
    return float(b1), float(b2)
