"""Shared rich consoles: results to stdout, messages and progress to stderr."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def make_progress(transient: bool = False) -> Progress:
    """A progress bar with count, elapsed time and ETA, drawn on stderr."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
    )


def counted(n: int, noun: str) -> str:
    """``1 error``, ``2 errors``: a count with its noun in the right number (nouns that take an -s)."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


@contextmanager
def resumable_run_progress(loading: str, working: str, kept: str) -> Iterator[Callable[[int, int], None]]:
    """A progress bar for a resumable run, yielding its ``on_progress(done, total)`` callback: ``loading`` shows
    until the first update, then ``working`` with the count. Ctrl-C stops the bar, warns ``kept`` (what was saved,
    how to resume) and exits with code 130 instead of a traceback."""
    with make_progress() as progress:
        task = progress.add_task(loading, total=None)
        try:
            yield lambda done, total: progress.update(task, description=working, completed=done, total=total)
        except KeyboardInterrupt:
            progress.stop()
            warn(f"interrupted: {kept}")
            raise typer.Exit(130) from None


def print_table(table: Table, out: Console | None = None) -> None:
    """Print ``table`` with every value whole: as a grid when its natural width fits the terminal, else stacked, one
    block of ``column: value`` lines per row (a narrow terminal would otherwise fold numbers or drop columns)."""
    out = out or console
    if Measurement.get(out, out.options.update_width(1_000_000), table).maximum <= out.width:
        out.print(table)
        return
    if table.title:
        out.print(table.title if isinstance(table.title, Text) else out.render_str(str(table.title)), style="bold italic")
    columns = [(str(c.header), list(c.cells)) for c in table.columns]
    for k in range(table.row_count):
        out.print(Text("─" * min(out.width, 40), style="dim"))
        for header, cells in columns:
            cell = cells[k]
            value = cell if isinstance(cell, Text) else out.render_str(str(cell))
            out.print(Text.assemble((f"{header}: ", "bold"), value))
