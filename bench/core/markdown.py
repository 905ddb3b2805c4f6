"""Markdown tables for reports, tuning summaries and comparisons."""

from __future__ import annotations


def md_table(headers: list[str], rows: list[list]) -> str:
    def text(v) -> str:
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(text(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def fmt(value, spec: str) -> str | None:
    """A number for a table cell in `spec`, or None (an empty cell) when there is none."""
    return None if value is None else format(value, spec)
