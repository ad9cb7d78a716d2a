"""``make_meter``: a device profile's ``power_meter`` entry to a meter object; ``select_auto``: the first
meter that works here, from the device kind's ``CANDIDATES`` (:mod:`harness.power.auto`).

The reasons of the meters that did not work are kept (``meter.notes["auto"]``) so the results say why
power is NaN, e.g. "rapl: energy_uj is readable by root only ...".

Accepted specs: a name (``"tegrastats"``, ``"rapl"``, ``"auto"``, ``"none"`` ...), ``"external:/path/log.csv"``,
a table such as ``{type = "ina3221", rails = ["VDD_IN"]}``, or a ready ``Meter``.
"""
from __future__ import annotations

import inspect
from typing import Dict, Mapping, Optional, Sequence, Tuple, Type

from ..errors import HarnessError
from .auto import CANDIDATES, device_kind
from .base import Meter
from .external import ExternalLogMeter
from .hwmon import HwmonMeter
from .ina3221 import Ina3221Meter
from .jtop import JtopMeter
from .none import NO_METER, NoneMeter
from .nvml import NvmlMeter
from .rapl import RaplMeter
from .tegrastats import TegrastatsMeter

METERS: Dict[str, Type[Meter]] = {
    "tegrastats": TegrastatsMeter,
    "ina3221": Ina3221Meter,
    "jtop": JtopMeter,
    "hwmon": HwmonMeter,
    "rapl": RaplMeter,
    "nvml": NvmlMeter,
    "external": ExternalLogMeter,
    "none": NoneMeter,
}
# Options a caller may pass to any meter (the runner always passes its device profile).
GENERIC_OPTIONS = ("device",)
# "type:argument" shorthands and the option the argument fills.
SHORTHAND = {"external": "path", "tegrastats": "path"}


def known_types() -> str:
    return ", ".join(sorted(list(METERS) + ["auto"]))


def parse_spec(spec) -> Tuple[str, Dict[str, object]]:
    """(type, options) of a profile's power_meter value."""
    if spec is None:
        return "none", {}
    if isinstance(spec, str):
        text = spec.strip()
        kind, sep, arg = text.partition(":")
        kind = kind.strip().lower()
        if not sep:
            return kind, {}
        if kind not in SHORTHAND:
            raise HarnessError(f"power_meter = {spec!r}: only {', '.join(sorted(SHORTHAND))} take ':ARG'; "
                               f"use a table, e.g. {{type = \"{kind}\", ...}}, in the device profile")
        return kind, {SHORTHAND[kind]: arg.strip()}
    if isinstance(spec, Mapping):
        opts = dict(spec)
        kind = opts.pop("type", None)
        if not isinstance(kind, str):
            raise HarnessError(f"power_meter table {dict(spec)!r} needs type = one of {known_types()}; "
                               f"fix the device profile")
        return kind.strip().lower(), opts
    raise HarnessError(f"power_meter must be a name or a table, got {spec!r}; fix the device profile")


def accepted(cls: Type[Meter]) -> Tuple[str, ...]:
    params = inspect.signature(cls.__init__).parameters
    return tuple(n for n in params if n != "self" and params[n].kind not in (inspect.Parameter.VAR_KEYWORD,
                                                                              inspect.Parameter.VAR_POSITIONAL))


def build(kind: str, options: Mapping[str, object], lenient: bool = False) -> Meter:
    """One meter of ``kind``; unknown options are an error unless ``lenient`` (auto passes everything on)."""
    cls = METERS.get(kind)
    if cls is None:
        raise HarnessError(f"power_meter: unknown type '{kind}' (known: {known_types()}); fix the device profile")
    names = accepted(cls)
    kwargs = {k: v for k, v in options.items() if k in names}
    unknown = [k for k in options if k not in names and k not in GENERIC_OPTIONS]
    if unknown and not lenient:
        raise HarnessError(f"power meter '{kind}': unknown option(s) {', '.join(unknown)} "
                           f"(accepted: {', '.join(names) or 'none'}); fix power_meter in the device profile")
    try:
        return cls(**kwargs)  # type: ignore[call-arg]
    except TypeError as exc:
        raise HarnessError(f"power meter '{kind}': {exc}; fix power_meter in the device profile") from None
    except ValueError as exc:
        raise HarnessError(f"power meter '{kind}': {exc}; fix power_meter in the device profile") from None


def make_meter(spec=None, **options) -> Meter:
    """The meter for ``spec`` (see module doc); ``options`` are defaults the spec's own keys override.

    ``device`` (a profile dict or a name) steers ``auto``; a sysfs ``root`` lets tests use a fake tree.
    """
    if isinstance(spec, Meter):
        return spec
    kind, spec_opts = parse_spec(spec)
    merged: Dict[str, object] = dict(options)
    merged.update(spec_opts)
    if kind == "auto":
        return select_auto(**merged)
    if kind == "none" and "reason" not in merged:
        merged["reason"] = NO_METER
    return build(kind, merged, lenient=False)


def select_auto(device: object = None, candidates: Optional[Sequence[str]] = None, **options) -> Meter:
    """Probe the candidates in order; return the first that works, else a NoneMeter with every reason.

    Configuration mistakes (HarnessError, e.g. a rail that does not exist) still raise.
    """
    kind = device_kind(device)
    if isinstance(candidates, str):
        candidates = (candidates,)
    names = tuple(candidates) if candidates else tuple(CANDIDATES.get(kind, CANDIDATES["cpu"]))
    failed: Dict[str, str] = {}
    for name in names:
        if name == "auto":
            raise HarnessError("power_meter auto: 'auto' cannot be its own candidate; fix the device profile")
        meter = build(name, options, lenient=True)
        try:
            ok, why = meter.probe()
        except HarnessError:
            raise
        except Exception as exc:  # a broken driver must not stop the benchmark
            ok, why = False, f"{type(exc).__name__}: {exc}"
        if ok:
            meter.notes["auto"] = {"device_kind": kind, "chosen": name, "why": why, "failed": dict(failed)}
            return meter
        meter.close()
        failed[name] = why
    reason = "no power meter works here: " + "; ".join(f"{n}: {w}" for n, w in failed.items())
    if not failed:
        reason = "no power meter candidates for this device"
    meter = NoneMeter(reason)
    meter.notes["auto"] = {"device_kind": kind, "chosen": None, "failed": failed}
    return meter


__all__ = ["METERS", "make_meter", "parse_spec", "build", "known_types", "select_auto"]
