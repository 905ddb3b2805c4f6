"""Errors a user can trigger. The CLI prints them as one line and exits 2 (no traceback)."""

from __future__ import annotations


class UserError(Exception):
    """Bad input: unknown model/frontend/target, impossible shapes, unreadable file, corrupt report."""


def closest(name: str, choices: list[str]) -> str:
    """' (did you mean X?)' when a close match exists, else ''."""
    import difflib

    match = difflib.get_close_matches(name, choices, n=1)
    return f" (did you mean {match[0]!r}?)" if match else ""


def unknown(kind: str, name: str, choices: list[str]) -> UserError:
    return UserError(f"unknown {kind} {name!r}{closest(name, choices)}; choose from: {', '.join(choices)}")


class Interrupted(Exception):
    """Ctrl-C or SIGTERM during a run: the cells finished so far are kept (`cells`)."""

    def __init__(self, signame: str, exit_code: int, cells: list):
        super().__init__(signame)
        self.signame, self.exit_code, self.cells = signame, exit_code, cells
