"""The network classes of the zoo's families, at module level (PyTorch at each module's top).

One module per family, named after it: :mod:`.esr` (the eSR pool), :mod:`.fast` (the fast eSR
heads), :mod:`.edsr`, :mod:`.bsrn`, :mod:`.abpn`, :mod:`.bicubic` (bicubic as a network) and
:mod:`.ghost` (``GhostConv2d``; its torch-free shift arithmetic is :mod:`.ghost_shift`). ClassSR
keeps its networks in its own package (:mod:`harness.models.classsr.networks`).

Only a family's build functions import these modules (``from .nets.esr import EdgeSRMax``), so
importing :mod:`harness.models` (listing ids) never imports PyTorch. Where PyTorch is absent they
still import (tests/test_py38.py imports every module with torch blocked): their classes subclass
:mod:`.torchless` instead, and building a network raises ``import torch``'s ImportError.

The classes pickle by name (``harness.models.nets.esr.EdgeSRMax``); each family module also
resolves its classes under the names pickled before they moved here (``harness.models.esr.EdgeSRMax``)
through its ``__getattr__`` (PEP 562). This package imports nothing itself.
"""
