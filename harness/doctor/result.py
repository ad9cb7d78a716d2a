"""What a check returns and how a list of them is judged: :class:`Check` (one line of the report:
ok / absent / wrong / info, the fix, whether it is required, the parsed facts), :func:`format_lines`
(the text table) and :func:`exit_code` (1 when a required check is not ok)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Sequence

STATUSES = ("ok", "absent", "wrong", "info")


@dataclass
class Check:
    """One check: ``status`` is ok / absent / wrong / info; ``fix`` says what to do when not ok;
    ``required`` checks that are not ok make the exit status 1; ``data`` holds the parsed facts."""

    name: str
    status: str
    value: str
    fix: str = ""
    required: bool = False
    data: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"check {self.name}: status {self.status!r} is not one of {', '.join(STATUSES)}")

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> Dict[str, object]:
        return {"name": self.name, "status": self.status, "value": self.value, "fix": self.fix,
                "required": self.required, "data": _jsonable(self.data)}


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def format_lines(checks: Sequence[Check]) -> List[str]:
    """``ok      python          3.8.10 (aarch64)`` ... one line per check, the fix after ``->``."""
    width = max([15] + [len(c.name) for c in checks])
    lines = []
    for c in checks:
        line = f"{c.status:<7} {c.name:<{width}} {c.value}"
        if c.fix and c.status != "ok":
            line += f" -> fix: {c.fix}"
        lines.append(line.rstrip())
    return lines


def exit_code(checks: Sequence[Check]) -> int:
    """1 when any required check is not ok (absent, wrong, or info where ok was needed), else 0."""
    return 1 if any(c.required and not c.ok for c in checks) else 0
