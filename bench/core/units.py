"""Units a user types: durations."""

from __future__ import annotations


def parse_duration(text: str) -> float:
    """Seconds in '90', '90s', '5m', '1h', '1h30m', '0'; ValueError naming the forms otherwise."""
    import re

    t = str(text).strip().lower()
    m = re.fullmatch(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?", t)
    if not t or m is None or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration: write e.g. 90s, 5m, 1h30m (0 for none)")
    h, mi, sec = (float(g) if g else 0.0 for g in m.groups())
    return h * 3600 + mi * 60 + sec
