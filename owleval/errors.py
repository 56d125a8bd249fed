"""Errors that the command line shows to users as one clear message (no traceback)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class OwlEvalError(Exception):
    """An error caused by user input or the environment, worded for the user."""


@dataclass(frozen=True)
class Problem:
    """One finding about an input file: where it is and what is wrong."""

    file: Path
    line: int | None
    field: str | None
    message: str
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = str(self.file)
        if self.line is not None:
            where += f":{self.line}"
        if self.field:
            where += f" [{self.field}]"
        return f"{where}: {self.severity}: {self.message}"


class InputFileError(OwlEvalError):
    """A file failed validation; carries every problem found, not only the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = [p for p in problems if p.severity == "error"]
        head = "\n".join(str(p) for p in self.problems[:20])
        more = len(self.problems) - 20
        if more > 0:
            head += f"\n... and {more} more"
        super().__init__(head)


class MissingDependencyError(OwlEvalError):
    """An optional package is needed for this feature."""

    def __init__(self, package: str, feature: str):
        super().__init__(f"{feature} needs the package '{package}': pip install {package}")
