"""Power meters, each read once: every meter the profile can use (``auto``: the device's
candidates; on a Jetson always ``ina3221``, ``tegrastats`` and ``jtop``) probed, read (energy
counters twice, 0.3 s apart, when live) and described in watts per rail, or why not; a replay reads
the captured sensor files and tegrastats lines. On a Jetson the totals of the meters that read are
printed side by side (``power compare``)."""
from __future__ import annotations

import math
import time
from typing import Dict, List, Mapping, Optional, Tuple

from ..errors import HarnessError
from .context import kind_of
from .result import Check
from .system import TEGRASTATS, System, not_in_capture


def _meter_names(profile: Mapping[str, object], kind: str) -> List[Tuple[str, Dict[str, object]]]:
    """(meter type, options) for every meter the profile can use; on a Jetson all three readers."""
    from ..power.auto import CANDIDATES
    from ..power.factory import parse_spec

    spec_kind, opts = parse_spec(profile.get("power_meter", "auto"))
    names: List[Tuple[str, Dict[str, object]]] = []
    if spec_kind == "auto":
        names = [(n, dict(opts)) for n in CANDIDATES.get(kind, CANDIDATES["cpu"])]
    elif spec_kind != "none":
        names = [(spec_kind, dict(opts))]
    if kind == "jetson":
        for extra in ("ina3221", "tegrastats", "jtop"):
            if extra not in [n for n, _ in names]:
                names.append((extra, {}))
    return names


def _describe(reading, meter_name: str, energy_rate_w: Optional[float] = None) -> Tuple[str, Dict[str, object]]:
    if energy_rate_w is not None:
        total = energy_rate_w
        rails = {}
    else:
        total = reading.total_w()
        rails = dict(reading.watts)
    data: Dict[str, object] = {"total_w": total, "rails_w": rails, "total_rail": list(reading.total_rail)}
    value = f"{total:.2f} W" if math.isfinite(total) else "NaN W"
    if rails:
        shown = ", ".join(f"{k} {v:.2f}" for k, v in list(rails.items())[:8])
        value += f" ({shown} W)"
    return value, data


def _read_meter(meter, live: bool) -> Tuple[str, Dict[str, object]]:
    """One reading (two for energy counters, 0.3 s apart, when live) as text and facts."""
    first = meter.read()
    if meter.mode == "energy":
        if not live:
            total = first.total_energy_j()
            return f"counter {total:.1f} J (one reading; a capture has no rate)", {"energy_j": total}
        t0 = first.t
        wait = max(0.3, float(getattr(meter, "min_window_s", 0.0) or 0.0))  # a span the counter measures
        time.sleep(wait)
        second = meter.read()
        rate = (second.total_energy_j() - first.total_energy_j()) / max(second.t - t0, 1e-9)
        value, data = _describe(second, meter.name, energy_rate_w=rate)
        step = meter.info().get("counter_update_s")
        if step is not None:
            data["counter_update_s"] = step
        updates = f"; it updates every {step * 1000:.0f} ms" if isinstance(step, float) else ""
        return value + f" (energy counter over {wait:.1f} s{updates})", data
    return _describe(first, meter.name)


def _replayed_tegrastats(sysm: System, rails) -> Check:
    from ..power.tegrastats import parse_line, to_reading

    res = sysm.run(TEGRASTATS)
    if res.output is None:
        return Check("power tegrastats", "absent", res.why)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    for ln in lines:
        parsed = parse_line(ln)
        if parsed.rails_mw:
            reading = to_reading(parsed, 0.0, 0.0, rails, source="tegrastats (capture)")
            value, data = _describe(reading, "tegrastats")
            data.update({"lines": len(lines), "format": parsed.fmt})
            return Check("power tegrastats", "ok", value + f"; {len(lines)} captured lines", data=data)
    return Check("power tegrastats", "wrong", f"{len(lines)} captured line(s), none with power rails",
                 "check that tegrastats runs on the device: tegrastats --interval 100")


def power_checks(profile: Mapping[str, object], system: System) -> List[Check]:
    """Every meter the profile can use, each read once; on a Jetson a side-by-side line as well."""
    from ..power.base import MeterError
    from ..power.factory import build

    kind = kind_of(profile)
    out: List[Check] = []
    for name, opts in _meter_names(profile, kind):
        label = f"power {name}"
        if name == "tegrastats" and system.replaying:
            out.append(_replayed_tegrastats(system, opts.get("rails")))
            continue
        if name in ("nvml", "jtop") and not system.live:
            out.append(not_in_capture(system, label))
            continue
        options = dict(opts)
        options.setdefault("root", system.sysfs())
        try:
            meter = build(name, options, lenient=True)
        except HarnessError as exc:
            out.append(Check(label, "wrong", str(exc), "fix power_meter in the device profile"))
            continue
        try:
            try:
                ok, why = meter.probe()
            except HarnessError as exc:
                out.append(Check(label, "wrong", str(exc), "fix power_meter in the device profile"))
                continue
            if not ok:
                denied = "not readable" in why or "root only" in why or "permission" in why.lower()
                fix = why.split(": ", 1)[1] if denied and ": " in why else ""
                out.append(Check(label, "wrong" if denied else "absent", why, fix, data={"why": why}))
                continue
            if meter.mode == "log":
                out.append(Check(label, "info", why + " (read after a run; nothing to read now)"))
                continue
            try:
                value, data = _read_meter(meter, system.live)
            except (MeterError, OSError) as exc:
                out.append(Check(label, "wrong", f"{why}, but the read failed: {exc}", data={"why": why}))
                continue
            data["why"] = why
            out.append(Check(label, "ok", value, data=data))
        finally:
            try:
                meter.close()
            except Exception:  # noqa: BLE001 - a meter that fails to close must not stop doctor
                pass
    totals = {c.name.split(" ", 1)[1]: c.data.get("total_w") for c in out
              if c.ok and isinstance(c.data.get("total_w"), float) and math.isfinite(c.data["total_w"])}
    if kind == "jetson" and len(totals) >= 2:
        values = list(totals.values())
        spread = (max(values) - min(values)) / max(abs(max(values)), 1e-9) * 100.0
        shown = " | ".join(f"{k} {v:.2f} W" for k, v in totals.items())
        out.append(Check("power compare", "info", f"{shown} (spread {spread:.1f}%; read at different instants)",
                         data={"totals_w": totals, "spread_pct": spread}))
    return out
