"""Markdown tables for reports, tuning summaries and comparisons."""

from __future__ import annotations


def md_table(headers: list[str], rows: list[list]) -> str:
    def fmt(v) -> str:
        return "" if v is None else str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
