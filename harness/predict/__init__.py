"""A speed predictor for the eSR authors' devices: FHD/s on a Jetson AGX Xavier, a GTX 1080 Max-Q or a
Raspberry Pi 400, predicted from a model's features, fitted on their published measurements
(docs/predictor.md).

    from harness.results.paper import paper_frame
    from harness.predict import fit, predict_model
    table = paper_frame("tests.pkl")
    p = predict_model("eSR-TM_s2_K7_C3", 2, "agx", table)   # Prediction: fhd_per_s, low, high, warnings
    predictor = fit(table, "rpi")                            # fit once, predict many: predictor=...
"""
from .model import (
           BAND,
           CANDIDATES,
           DEVICE_COLUMNS,
           DEVICE_NAMES,
           Prediction,
           Predictor,
           device_key,
           evaluate,
           family_folds,
           fit,
           noise_floor,
           predict_model,
           random_folds,
           summarize,
           unlike_pool,
)

__all__ = ["BAND", "CANDIDATES", "DEVICE_COLUMNS", "DEVICE_NAMES", "Prediction", "Predictor", "device_key",
           "evaluate", "family_folds", "fit", "noise_floor", "predict_model", "random_folds", "summarize",
           "unlike_pool"]
