"""The model zoo: every model the harness can run, by id."""
from __future__ import annotations

import functools
import re

from . import abpn, bicubic, bsrn, custom, esr, onnx_file
from .base import TorchUpscaler, Upscaler
from .registry import SCALES, Family, all_ids, families, id_scale, register, resolve

register(Family(
    name="bicubic-matlab",
    pattern=re.compile(r"bicubic-matlab"),
    build=lambda m, s: bicubic.matlab_bicubic(s),
    ids=lambda s: ["bicubic-matlab"],
    description="MATLAB imresize bicubic on uint8 RGB (the literature's bicubic row)",
))
register(Family(
    name="bicubic-opencv",
    pattern=re.compile(r"bicubic-opencv"),
    build=lambda m, s: bicubic.opencv_bicubic(s),
    ids=lambda s: ["bicubic-opencv"],
    description="cv2.resize INTER_CUBIC (a=-0.75) on uint8 RGB",
))
register(Family(
    name="Bicubic",
    pattern=re.compile(r"Bicubic_s(?P<scale>\d+)"),
    build=lambda m, s: bicubic.bicubic_network(s),
    ids=lambda s: [f"Bicubic_s{s}"],
    description="bicubic as a network (5x5 conv + PixelShuffle, Keys a=-0.5, MATLAB grid), Y channel",
))
# The eSR pool (WACV 2022): eSR-MAX/TM/TR/CNN, the authors' ESPCN and FSRCNN, and their
# bicubic deconvolution under its own id (``Bicubic_s*`` above is ours, on MATLAB's grid).
for _name in esr.FAMILIES:
    register(Family(
        name=_name,
        pattern=esr.PATTERNS[_name],
        build=esr.build_from_match,
        ids=functools.partial(esr.design_space, _name),
        description=esr.DESCRIPTIONS[_name],
        load_weights=esr.load_weights,
    ))
del _name

register(Family(
    name="ABPN",
    pattern=re.compile(r"ABPN_s(?P<scale>\d+)"),
    build=abpn.build,
    ids=lambda s: [f"ABPN_s{s}"],
    description="anchor-based plain net (MAI 2021), RGB, 7 conv + anchor; built for INT8",
    load_weights=abpn.load_weights,
))
register(Family(
    name="BSRN",
    pattern=bsrn.PATTERN,
    build=bsrn.build_from_match,
    ids=bsrn.ids,
    description=bsrn.DESCRIPTION,
    load_weights=bsrn.load_weights,
))
# EDSR-baseline (Y) and GhostSR: ghost features in EDSR and the eSR pool's FSRCNN/ESPCN (ghost.py).
from . import edsr, ghost  # noqa: E402 - kept beside its registrations

register(Family(
    name="EDSR",
    pattern=edsr.PATTERN,
    build=edsr.build_from_match,
    ids=edsr.ids,
    description=edsr.DESCRIPTION,
    load_weights=edsr.load_weights,
))
register(Family(
    name="GhostSR",
    pattern=ghost.PATTERN,
    build=ghost.build_from_match,
    ids=ghost.ids,
    description=ghost.DESCRIPTION,
    load_weights=ghost.load_weights,
    base_of=ghost.base_id,
))
# ClassSR (CVPR 2021): patches classified and routed to three FSRCNN branches (classsr/), x4 only.
from . import classsr  # noqa: E402 - kept beside its registration

register(Family(
    name=classsr.FAMILY,
    pattern=classsr.PATTERN,
    build=classsr.build_from_match,
    ids=classsr.ids,
    description=classsr.DESCRIPTION,
    load_weights=classsr.load_weights,
    reference_of=lambda model_id: classsr.BRANCH_IDS[-1],
))
register(Family(
    name="custom",
    pattern=re.compile(custom.PATTERN),
    build=custom.build,
    ids=lambda s: [],
    description="a user's nn.Module as package.module:Class (with --scale and --weights FILE)",
    load_weights=custom.load_weights,
))
register(Family(
    name="onnx",
    pattern=re.compile(onnx_file.PATTERN),
    build=onnx_file.build,
    ids=lambda s: [],
    description="a user's ONNX file (1-channel Y or 3-channel RGB; the scale is read from the model)",
    infers_scale=True,
))

__all__ = ["Family", "SCALES", "TorchUpscaler", "Upscaler", "all_ids", "families", "id_scale", "register", "resolve"]
