"""One exception for every user mistake, so the CLI can print a paragraph instead of a traceback."""
from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: names where it is (file:line) and what to do instead."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 fix: str | None = None) -> None:
        super().__init__(message)
        self.message, self.file, self.line, self.fix = message, file, line, fix

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}: " if self.file and self.line else (f"{self.file}: " if self.file else "")
        return f"{where}{self.message}" + (f" Fix: {self.fix}" if self.fix else "")


class RunFailed(Exception):
    """The run could not support a result (impairment not applied, capture lost packets...)."""
