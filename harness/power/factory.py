"""``make_meter``: a device profile's ``power_meter`` entry to a meter object.

Accepted specs: a name (``"tegrastats"``, ``"rapl"``, ``"auto"``, ``"none"`` ...), ``"external:/path/log.csv"``,
a table such as ``{type = "ina3221", rails = ["VDD_IN"]}``, or a ready ``Meter``.
"""
from __future__ import annotations

import inspect
from typing import Dict, Mapping, Tuple, Type

from ..errors import HarnessError
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
        from .auto import select_auto

        return select_auto(**merged)
    if kind == "none" and "reason" not in merged:
        merged["reason"] = NO_METER
    return build(kind, merged, lenient=False)


def meter_from_profile(profile: Mapping[str, object], **options) -> Meter:
    """Convenience for the runner: the profile's ``power_meter`` (default ``auto``) with the profile as device."""
    options.setdefault("device", dict(profile))
    return make_meter(profile.get("power_meter", "auto"), **options)


__all__ = ["METERS", "make_meter", "meter_from_profile", "parse_spec", "build", "known_types"]
