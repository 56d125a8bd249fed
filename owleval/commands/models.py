"""``owleval models [NAME]``: the installed model adapters, or one adapter's ``-o`` options with help and default.

Printed as wrapped text, not a table, so nothing is cut off at 80 columns or when the output is not a terminal.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer
from rich.markup import escape

from owleval.console import console


def _say(text: str, indent: int = 0) -> None:
    console.print(escape(" " * indent + text), highlight=False)


def models(
    name: Annotated[Optional[str], typer.Argument(help="An adapter's name: list its options with their help and defaults.")] = None,
) -> None:
    """List the model adapters that are installed (built-in and from other packages' entry points); with NAME,
    that adapter's -o KEY=VALUE options, each with its help and default.

    Examples: owleval models ;  owleval models openai
    """
    from owleval.adapters.registry import available_adapters, get_adapter_class

    if name is not None:
        cls = get_adapter_class(name)  # an unknown name is refused, listing the known ones
        _say(f"{cls.name}: {cls.description}")
        details = getattr(cls, "details", None)
        if callable(details):  # e.g. hf: the families tested, refused here, and only expected to work
            _say(details(), 2)
        _say(f"default checkpoint: {cls.default_checkpoint or 'none (give --checkpoint)'}", 2)
        if not cls.option_help:
            _say("options: none", 2)
        for key, help_text in cls.option_help.items():
            _say(f"-o {key}=VALUE   (default: {cls.option_defaults.get(key) or 'none'})", 2)
            _say(help_text, 6)
        return
    console.print("[bold]Model adapters[/] (use with: owleval generate --model NAME; details: owleval models NAME)", highlight=False)
    for adapter, spec in available_adapters().items():
        try:
            cls = get_adapter_class(adapter)
        except Exception as exc:  # a broken third-party adapter is listed, not fatal
            console.print(f"[bold]{escape(adapter)}[/] ({escape(spec.source)}): [red]cannot load: {escape(str(exc))}[/]", highlight=False)
            continue
        console.print(f"[bold]{escape(adapter)}[/] ({escape(spec.source)}): {escape(cls.description)}", highlight=False)
        if cls.default_checkpoint:
            _say(f"default checkpoint: {cls.default_checkpoint}", 2)
        _say(f"options (-o KEY=VALUE): {', '.join(cls.option_help) or 'none'}", 2)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
