"""``owleval models``: list the installed model adapters."""

from __future__ import annotations

import typer
from rich.table import Table

from owleval.console import console


def models() -> None:
    """List the model adapters that are installed (built-in and from other packages' entry points).

    Example: owleval models
    """
    from owleval.adapters.registry import available_adapters, get_adapter_class

    table = Table(title="Model adapters (use with: owleval generate --model NAME)")
    for column in ("name", "description", "default checkpoint", "options (-o KEY=VALUE)", "from"):
        table.add_column(column)
    for name, spec in available_adapters().items():
        try:
            cls = get_adapter_class(name)
            description, default, options = cls.description, cls.default_checkpoint or "", ", ".join(cls.option_help)
        except Exception as exc:  # a broken third-party adapter is listed, not fatal
            description, default, options = f"[red]cannot load: {exc}[/]", "", ""
        table.add_row(name, description, default, options, spec.source)
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
