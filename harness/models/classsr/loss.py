"""The authors' ClassSR loss and the classifier's training step (PyTorch imported when called).

Loss (:func:`classsr_loss`): the authors' ``ClassSR_loss`` with their FSRCNN weights
(``train_ClassSR_FSRCNN.yml``: l1w 1000, class_loss_w 0.5, average_loss_w 3, i.e. 2000:1:6):
mean L1, the class loss ``(M-1) - sum_{i<j} |p_i - p_j|`` per patch averaged over the batch
(0 for one-hot, M-1 for uniform probabilities: it pushes each patch to one branch), and the
average loss ``sum_j |sum_batch p_j - B/M| / (2(M-1) B/M)`` (the authors' ``/ (4 B/3)`` at
M = 3; 0 when every branch gets an equal share of the batch, 1 when one branch gets it all).

Training with ``python -m harness train ClassSR-FSRCNN_s4`` (:mod:`harness.train`) goes through
the module's hooks (:meth:`~harness.models.classsr.networks.ClassSR.training_loss`, the loss of
the blended forward, and ``trainable_parameters``, the classifier: the branches are frozen, the
authors' ``fix_SR_module: true``); :func:`classifier_optimizer` and :func:`train_step` are the
same recipe for a hand-written loop.
"""
from __future__ import annotations

from typing import Dict, Optional

# The authors' train_ClassSR_FSRCNN.yml: l1w 1000, class_loss_w 0.5, average_loss_w 3 (2000:1:6).
LOSS_WEIGHTS = {"l1": 1000.0, "class": 0.5, "average": 3.0}
LOSS_NAME = (f"ClassSR loss (the authors'): {LOSS_WEIGHTS['l1']:g} L1 + {LOSS_WEIGHTS['class']:g} class + "
             f"{LOSS_WEIGHTS['average']:g} average (2000:1:6) on the probability-blended forward")
# The trainer stops at a loss above this (its default, 1e3, is for a plain L1 on [0, 1] images;
# here the L1 term is weighted 1000).
DIVERGED_LOSS = LOSS_WEIGHTS["l1"] * 1e3


def class_loss(probs):
    """The authors' class loss: ``(M-1) - sum_{i<j} |p_i - p_j|`` per patch, batch mean (0 when one-hot)."""
    m = probs.shape[1]
    pairwise = (probs[:, :, None] - probs[:, None, :]).abs().sum(dim=(1, 2)) / 2
    return ((m - 1) - pairwise).mean()


def average_loss(probs):
    """The authors' average loss: ``sum_j |sum_batch p_j - B/M|``, normalised to [0, 1] (their /(4B/3) at M=3)."""
    b, m = probs.shape
    share = b / m
    return (probs.sum(dim=0) - share).abs().sum() / (2 * (m - 1) * share)


def classsr_loss(sr, hr, probs, weights: Optional[Dict[str, float]] = None):
    """``(total, parts)``: weighted L1 + class + average loss; ``parts`` holds the unweighted terms and the total."""
    import torch.nn.functional as F

    w = dict(LOSS_WEIGHTS, **(weights or {}))
    terms = {"l1": F.l1_loss(sr, hr), "class": class_loss(probs), "average": average_loss(probs)}
    total = sum(w[k] * v for k, v in terms.items())
    parts = {k: float(v.detach()) for k, v in terms.items()}
    parts["total"] = float(total.detach())
    return total, parts


def classifier_optimizer(model, lr: float = 2e-4, freeze_branches: bool = True):
    """Adam (betas 0.9, 0.99, the authors') over the classifier; the branches are frozen as in the
    authors' ``fix_SR_module: true`` unless ``freeze_branches`` is False (then they train too)."""
    import torch

    module = getattr(model, "module", model)
    for p in module.branches.parameters():
        p.requires_grad_(not freeze_branches)
    params = [p for p in module.parameters() if p.requires_grad]
    return torch.optim.Adam(params, lr=lr, betas=(0.9, 0.99))


def train_step(model, optimizer, lr, hr, weights: Optional[Dict[str, float]] = None) -> Dict[str, float]:
    """One step on a batch of LR patches (N, 1, 32, 32) and their HR patches (N, 1, 128, 128).

    The probability-blended forward (train mode), :func:`classsr_loss`, backward, step; the
    module's train/eval mode is restored afterwards. Returns the loss parts as floats.
    """
    module = getattr(model, "module", model)
    was_training = module.training
    module.train()
    try:
        sr, probs = module(lr)
        total, parts = classsr_loss(sr, hr, probs, weights)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
    finally:
        module.train(was_training)
    return parts
