"""The stand-in for ``torch.nn`` where PyTorch is not installed (a device venv).

The network modules (this package's, and :mod:`harness.models.classsr.classifier` and
:mod:`~harness.models.classsr.networks`) define their ``nn.Module`` classes at module level, so
they import PyTorch at their top; every module of the package must still import without it
(tests/test_py38.py). There they subclass :class:`Module` (or :class:`Sequential`) instead, and
building a network raises the ImportError of ``import torch`` (name ``torch``): the error the
harness turns into its "needs PyTorch" advice; so does any other name looked up here
(``nn.Conv2d``, ...).
"""
from __future__ import annotations


class Module:
    """Base of the network classes without PyTorch: instantiating one raises ``import torch``'s error."""

    def __init__(self, *args, **kwargs):
        import torch  # noqa: F401 - not installed here: raises ModuleNotFoundError (name 'torch')


class Sequential(Module):
    """``nn.Sequential``'s stand-in (a base class of some networks' parts); raises like :class:`Module`."""


def __getattr__(name: str):
    """Any other ``nn`` name (``nn.Conv2d``, ...): raises ``import torch``'s error, as :class:`Module` does."""
    import torch  # noqa: F401 - not installed here: raises ModuleNotFoundError (name 'torch')

    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")  # torch importable: not reached
