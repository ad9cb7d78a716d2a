"""Validation during training: PSNR with the harness's own quality protocol (:class:`Validator`)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional

from ..errors import HarnessError, first_line
from .targets import rng_kept


class Validator:
    """Validation PSNR with the harness's own protocol (QualityEvaluator), LR pairs made once.

    The module being trained is scored inside the model's own :class:`Upscaler` (its space,
    scale and notes; ``models[model_id]``, which :func:`harness.train.loop.train_model` fills with the one it
    trains, else ``resolve(model_id)``): Y models see Y, RGB models RGB, and PSNR is on Y as
    the protocol says.
    """

    def __init__(self, val_data: Optional[str], set_name: str = "Set5"):
        from ..datasets import EMBEDDED, ENV_DATA, data_root, embedded_set, find_set, set_dir
        from ..protocol import QualityEvaluator

        if val_data:
            self.image_set = find_set(data_root(val_data), set_name)
        else:
            env = os.environ.get(ENV_DATA)
            root = Path(env).expanduser() if env else None
            if root is not None and root.is_dir() and set_dir(root, set_name) is not None:
                self.image_set = find_set(root, set_name)
            else:
                self.image_set = embedded_set()
        self.evaluator = QualityEvaluator(show_progress=False)
        self.standard = self.image_set.name != EMBEDDED
        self.models: Dict[str, object] = {}

    def model_for(self, model_id: str, module):
        """The Upscaler of ``model_id`` with ``module`` (in eval mode) as its network."""
        import copy

        from ..models import resolve

        template = self.models.get(model_id)
        if template is None:
            with rng_kept():
                template = self.models[model_id] = resolve(model_id)
        model = copy.copy(template)
        model.module = module.eval()
        model.weights = "training"
        return model

    def psnr(self, model_id: str, module) -> float:
        was_training = module.training
        try:
            return float(self.evaluator.evaluate(self.model_for(model_id, module), self.image_set).psnr)
        except RuntimeError as exc:  # e.g. an image too small for the network's own downsampling
            raise HarnessError(f"{model_id} failed on the validation set {self.image_set.name} "
                               f"({first_line(exc)}); use bigger validation images or --val-every 0") from None
        finally:
            module.train(was_training)

    def record(self) -> Dict:
        return {"name": self.image_set.name, "images": len(self.image_set), "origin": self.image_set.origin}
