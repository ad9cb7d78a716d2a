"""The stand-in for ``torch.nn`` where PyTorch is not installed (a device venv).

:mod:`.classifier` and :mod:`.networks` define their ``nn.Module`` classes at module level, so they
import PyTorch at their top; every module of the package must still import without it
(tests/test_py38.py). There they subclass :class:`Module` instead, and building a network raises
the ImportError of ``import torch`` (name ``torch``): the error the harness turns into its
"needs PyTorch" advice, as before the split.
"""
from __future__ import annotations


class Module:
    """Base of the network classes without PyTorch: instantiating one raises ``import torch``'s error."""

    def __init__(self, *args, **kwargs):
        import torch  # noqa: F401 - not installed here: raises ModuleNotFoundError (name 'torch')
