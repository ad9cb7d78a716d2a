"""Training the zoo's learnable networks: ``python -m harness train ID|--pool NAME --data DIR [--init-weights W]``.

Why it exists: the benchmark compares our own trained weights with the official ones, so
training must be reproducible from one command and its provenance recorded beside the
weights. Any model of the registry that has a weights loader and an ``nn.Module`` with
parameters trains here (the eSR pool, ABPN, BSRN, ...); fixed-weight models (bicubic,
ONNX files) are refused. Recipe (the eSR authors' setting as far as the paper gives it):
LR made by the harness's MATLAB-faithful bicubic shrink of the uint8 RGB image (the same
degradation the quality protocol uses), in the model's own space -- BT.601 Y in [0, 1] for
``input_space='y'`` models, RGB in [0, 1] for ``'rgb'`` ones -- random aligned patches with
the 8 flips/rotations, L1 loss, Adam, cosine decay of the learning rate to ``--min-lr``. eSR
families get the authors' initialisation (:func:`harness.models.esr.build_module`), the
others their module's own (PyTorch's default for ABPN and BSRN). Steps, batch, learning rate
and patch come from the family's recipe (:data:`RECIPES`, else :data:`GENERIC_RECIPE`).

Fine-tuning: ``--init-weights FILE|shipped|official`` starts from a weights file instead of
the init, loaded by the registry family's ``load_weights`` (as ``--weights`` loads it: a
``Ghost-<id>`` takes a state dict of ``<id>`` and ghostifies it; ``shipped``/``official`` are
those of the family's ``base_of(id)``, the base network for GhostSR; ClassSR takes
``branches:D16,D36,D56``); the provenance records ``init: weights FILE (sha256 ...)``.

Model-defined hooks, so that a new model stays one file plus a registry entry: a module with
``training_loss(lr, hr) -> (loss, parts)`` is trained on that loss instead of L1 (the running
means of ``parts`` go into the validation lines, each ``history`` entry and ``loss_parts``);
a module with ``trainable_parameters()`` has only those optimised, every other parameter frozen
(ClassSR: the classifier, its branches fixed). A module's ``diverged_loss`` replaces
:data:`DIVERGED_LOSS`, a recipe's ``betas`` Adam's (0.9, 0.999). Every submodule with a
``training_progress(step, steps)`` is called with the 0-based step before each step (GhostSR
anneals its Gumbel-softmax temperature that way).

Files, in ``--out`` (default ``$HARNESS_CACHE/train/<id>/``): ``last.pt`` (everything needed
to continue bit-exactly with ``--resume``), ``best.pt`` (the state dict with the best
validation PSNR), and at the end ``<id>.pt`` (the final state dict, for
``--weights PATH``) and ``<id>.json`` (provenance); ``.train.lock`` is held while a run
trains there, so a second run on the same folder is refused. The LR/HR pairs of a training folder
are made once per (folder contents, scale, space) and cached as ``.npz`` in
``$HARNESS_CACHE/train/`` (Y: float32; RGB: the exact uint8 images, 4x smaller).

Modules, in the order imports flow (each imports only modules before it; the package re-exports
their public names, so ``from harness import train; train.run(...)`` works as before):
:mod:`.files` (cache folder, atomic text, strict JSON), :mod:`.data` (folders, LR/HR pairs and
their cache, patches), :mod:`.targets` (what is trainable, fresh networks), :mod:`.finetune`
(``--init-weights``), :mod:`.recipes`, :mod:`.settings` (run settings, device, loss and its
border), :mod:`.checkpoint`, :mod:`.validation`, :mod:`.loop` (:func:`train_model`, losses,
provenance), :mod:`.planning` (plans, folder locks, :func:`run`, ``--jobs``), :mod:`.cluster`
(``--cluster``, Ray; imported only for it) and :mod:`.ship` (``zoo ship``), :mod:`.cli` (the
command line).
"""
from __future__ import annotations

from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, state_sha256
from .cli import add_train_parser, cmd_train
from .data import (
                   CACHE_FORMAT,
                   RGB_CACHE_FORMAT,
                   SPACES,
                   PatchSampler,
                   TrainFolder,
                   cache_key,
                   image_files,
                   load_folder,
                   parse_folders,
)
from .finetune import INIT_SHORTHANDS, InitWeights, init_source, load_init, resolve_init
from .loop import DIVERGED_LOSS, cosine_lr, provenance, train_model
from .planning import LOCK_NAME, Plan, default_out, hold_folders, plan, run, training_cost
from .recipes import (
                   DEFAULT_LR,
                   DEFAULT_PATCH,
                   GENERIC_RECIPE,
                   RECIPES,
                   betas_for,
                   default_patch,
                   recipe_for,
                   recipe_record,
)
from .settings import (
                   LOSSES,
                   Settings,
                   check_device,
                   crop_border,
                   for_family,
                   loss_border,
                   lr_for,
                   parse_loss_border,
                   patch_for,
                   receptive_radius,
)
from .targets import FIXED_FAMILIES, NotTrainable, Target, fresh_model, target, trainable
from .validation import Validator

# Not re-exported: the losses (l1_loss, mse_loss). train_model looks them up in harness.train.loop,
# so that is where a test replaces them; a copy here would be replaced to no effect.
__all__ = [
    "CACHE_FORMAT", "CHECKPOINT_FORMAT", "DEFAULT_LR", "DEFAULT_PATCH", "DIVERGED_LOSS", "FIXED_FAMILIES",
    "GENERIC_RECIPE", "INIT_SHORTHANDS", "LOCK_NAME", "LOSSES", "RECIPES", "RGB_CACHE_FORMAT", "SPACES",
    "InitWeights", "NotTrainable", "PatchSampler", "Plan", "Settings", "Target", "TrainFolder", "Validator",
    "add_train_parser", "betas_for", "cache_key", "check_device", "cmd_train", "cosine_lr", "crop_border",
    "default_out", "default_patch", "for_family", "fresh_model", "hold_folders", "image_files", "init_source",
    "load_checkpoint", "load_folder", "load_init", "loss_border", "lr_for", "parse_folders", "parse_loss_border",
    "patch_for", "plan", "provenance", "receptive_radius", "recipe_for", "recipe_record", "resolve_init", "run",
    "state_sha256", "target", "trainable", "train_model", "training_cost",
]
