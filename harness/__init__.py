"""SR edge harness: quality, speed and power of super-resolution models on edge devices.

The Python API (:mod:`harness.api`), importable without PyTorch or ONNX Runtime (each is imported
only when a function needs it)::

    import harness
    q = harness.quality("eSR-TM_s2_K7_C4", scale=2, data="DATA", sets=["Set5"])
    r = harness.bench("eSR-TM_s2_K7_C4", device="cpu")
    run = harness.run_all(device="cpu", pool="none", models=["eSR-MAX_s{scale}_K3_C1"], scales=[2])
    df = harness.load_results("results/harness.db")
    harness.import_paper("eSR/data/tests.pkl"); harness.paper_figures()   # the eSR paper's own figures
"""
from typing import TYPE_CHECKING

__all__ = ["BenchResult", "Latency", "RunResult", "bench", "import_paper", "load_results", "paper_figures",
           "paper_overlay", "quality", "run_all"]

if TYPE_CHECKING:  # pragma: no cover - for type checkers; at run time the names load on first use
    from .api import (
        BenchResult,
        Latency,
        RunResult,
        bench,
        import_paper,
        load_results,
        paper_figures,
        paper_overlay,
        quality,
        run_all,
    )


def __getattr__(name: str):
    if name in __all__:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")
