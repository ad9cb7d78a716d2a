"""``python -m harness doctor``: :func:`doctor` runs the checks on this machine or a replayed
capture (capturing one on the way when asked) and prints the table or the JSON :func:`report`;
it returns the exit status."""
from __future__ import annotations

import json
from typing import Callable, Dict, Mapping, Sequence

from ..errors import HarnessError
from .capturing import capture
from .checks import run_checks
from .result import Check, exit_code, format_lines
from .system import System


def report(checks: Sequence[Check], profile: Mapping[str, object], system: System) -> Dict[str, object]:
    return {"device": str(profile.get("name", "?")), "profile": str(profile.get("path", "")),
            "mode": "live" if system.live else "replay", "root": str(system.root),
            "exit_code": exit_code(checks), "checks": [c.to_dict() for c in checks]}


def doctor(device: str = "cpu", as_json: bool = False, capture_dir=None, replay_dir=None,
           seconds: float = 3, out: Callable[[str], None] = print) -> int:
    """``python -m harness doctor``: print the checks (or JSON) and return the exit status.

    ``capture_dir``: also save a capture there (see :func:`capture`). ``replay_dir``: check a
    capture instead of this machine (library checks then say "not in capture").
    """
    from ..devices import load_profile

    profile = load_profile(device)
    if replay_dir is not None:
        system = System.replay(replay_dir)
    else:
        system = System()
    if capture_dir is not None:
        if replay_dir is not None:
            raise HarnessError("--capture and --replay together: replay a capture, or capture this machine")
        path = capture(capture_dir, profile, system, seconds=seconds)
        meta = json.loads((path / "capture.json").read_text())
        checks = [_check_from_dict(d) for d in meta["checks"]]
    else:
        checks = run_checks(profile, system)
    if as_json:
        payload = report(checks, profile, system)
        if capture_dir is not None:
            payload["capture"] = str(capture_dir)
        out(json.dumps(payload, indent=1))
    else:
        where = f" (replay of {replay_dir})" if replay_dir is not None else ""
        out(f"doctor: device profile '{profile.get('name')}'{where}")
        for line in format_lines(checks):
            out(line)
        code = exit_code(checks)
        failing = [c.name for c in checks if c.required and not c.ok]
        out(f"exit {code}: " + (f"required check(s) not ok: {', '.join(failing)}" if failing
                                else "every required check is ok"))
        if capture_dir is not None:
            out(f"capture saved in {capture_dir} (attach it to a bug report)")
    return exit_code(checks)


def _check_from_dict(d: Mapping[str, object]) -> Check:
    return Check(str(d.get("name")), str(d.get("status")), str(d.get("value")), str(d.get("fix") or ""),
                 bool(d.get("required")), dict(d.get("data") or {}))
