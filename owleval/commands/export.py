"""``owleval export lmms-eval|vlmevalkit|inspect --out DIR``: OwlEval's questions as a task of another kit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from owleval.console import console
from owleval.paths import default_data_dir

export_app = typer.Typer(
    help="Write OwlEval's 82 questions as a task of lmms-eval, VLMEvalKit or Inspect AI (one sample per dialogue); "
         "bring the kit's output back with `owleval answers import` and `--from` with the kit's name.\n\n"
         "Example: owleval export inspect --out owl_inspect/",
    no_args_is_help=True,
)

_OUT_HELP = "Folder to write the task into (created if missing)."
_DATA_HELP = "Data-set folder (default: the installed one)."
_OVERWRITE_HELP = "Replace export files that exist in --out."


def _done(kit: str, out: Path, files: dict[Path, str], run_hint: str) -> None:
    for path in sorted(files):
        console.print(f"  {path}", highlight=False)
    console.print(f"[green]exported[/] OwlEval for {kit} to {out}\nrun it: {run_hint}", highlight=False)


@export_app.command("lmms-eval")
def lmms_eval(
    out: Annotated[Path, typer.Option("--out", help=_OUT_HELP + " Pass it to lmms-eval as --include_path.")],
    embed_images: Annotated[bool, typer.Option("--embed-images", help="Store the images (base64) in the task's data files instead of absolute paths to the installed data set.")] = False,
    data: Annotated[Optional[Path], typer.Option("--data", help=_DATA_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=_OVERWRITE_HELP)] = False,
) -> None:
    """Tasks `owleval` (multi-round: each later turn sees the model's own earlier answers) and `owleval_single`
    (each question alone, for backends without multi-round support).

    Example: owleval export lmms-eval --out owl_task/

    Then: lmms-eval --include_path owl_task --tasks owleval --model ... --log_samples --output_path runs/
    """
    from owleval.bridges import lmms_eval as bridge

    files = bridge.write_export(out, data or default_data_dir(), embed_images=embed_images, overwrite=overwrite)
    _done("lmms-eval", out, files, f"lmms-eval --include_path {out.resolve()} --tasks owleval --model MODEL --model_args ... "
          "--log_samples --output_path runs/   (owleval_single for backends without generate_until_multi_round)")


@export_app.command("inspect")
def inspect_(
    out: Annotated[Path, typer.Option("--out", help=_OUT_HELP)],
    embed_images: Annotated[bool, typer.Option("--embed-images", help="Store the images as data: URIs in owleval.jsonl instead of absolute paths.")] = False,
    data: Annotated[Optional[Path], typer.Option("--data", help=_DATA_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=_OVERWRITE_HELP)] = False,
) -> None:
    """An Inspect task file (`owleval_task.py`: `@task owleval`, a multi-turn solver, images as content) and its
    data set `owleval.jsonl`.

    Example: owleval export inspect --out owl_inspect/

    Then: inspect eval owl_inspect/owleval_task.py --model openai/gpt-4o
    """
    from owleval.bridges import inspect_ai as bridge

    files = bridge.write_export(out, data or default_data_dir(), embed_images=embed_images, overwrite=overwrite)
    _done("Inspect", out, files, f"inspect eval {out / 'owleval_task.py'} --model PROVIDER/MODEL --log-dir logs/")


@export_app.command("vlmevalkit")
def vlmevalkit(
    out: Annotated[Path, typer.Option("--out", help=_OUT_HELP)],
    data: Annotated[Optional[Path], typer.Option("--data", help=_DATA_HELP)] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help=_OVERWRITE_HELP)] = False,
) -> None:
    """`LMUData/OwlEval.tsv` in VLMEvalKit's multi-turn (ImageMTDataset) layout, each image stored once, and the
    launcher `run_owleval.py` that registers the data set and runs VLMEvalKit's run.main() in inference mode.

    Example: owleval export vlmevalkit --out owl_vlm/

    Then: python owl_vlm/run_owleval.py --model Qwen2-VL-7B-Instruct
    """
    from owleval.bridges import vlmevalkit as bridge

    files = bridge.write_export(out, data or default_data_dir(), overwrite=overwrite)
    _done("VLMEvalKit", out, files, f"python {out / 'run_owleval.py'} --model MODEL --work-dir outputs/   (from your VLMEvalKit checkout's environment)")


def register(app: typer.Typer) -> None:
    app.add_typer(export_app, name="export")
