"""`owleval legacy`: BLEU, METEOR, ROUGE-L and CIDEr-D through pycocoevalcap, for comparison only."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from owleval.csvio import frame_to_csv

LEGACY_HELP = (
    "References: a reference answers file or folder (answer JSONL), 'leave-one-out' (the other models' answers), "
    "or 'graded:DB_OR_CSV' (the answers humans graded A)."
)


def legacy_command(
    answers: Annotated[Path, typer.Option("--answers", help="Answer files or folder to score.")],
    references: Annotated[str, typer.Option("--references", help=LEGACY_HELP)],
    metrics: Annotated[str, typer.Option("--metrics", help="Comma-separated: bleu, meteor, rouge, cider.")] = "bleu,meteor,rouge,cider",
    out: Annotated[Optional[Path], typer.Option("--out", help="Output folder.", show_default="./reports/legacy")] = None,
    data: Annotated[Optional[Path], typer.Option("--data", help="Data-set folder.", show_default="$OWLEVAL_DATA, else the installed set")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output folder.")] = False,
) -> None:
    """Captioning metrics per model (corpus) and per answer into legacy.csv; `owleval report --legacy` correlates them.

    For comparison only: BLEU, METEOR, ROUGE-L and CIDEr-D fit open-ended answers badly (Java is needed).

    Example: owleval legacy --answers answers/ --references leave-one-out --out reports/legacy
    """
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from owleval.commands.report import default_reports_dir
    from owleval.questions import load_questions
    from owleval.report.build import check_out_dir, dataset_version, write_folder
    from owleval.report.legacy import build_inputs, cider_variant, load_model_answers, parse_metrics, score_legacy
    from owleval.report.render_format import num

    chosen = parse_metrics(metrics)
    target = out if out is not None else default_reports_dir() / "legacy"
    check_out_dir(target, overwrite)
    questions = load_questions(data)
    texts = load_model_answers(answers, questions)
    inputs = build_inputs(references, texts, questions)
    console, status = Console(), Console(stderr=True)
    with status.status("scoring (the PTB tokenizer and METEOR start Java)..."):
        frame = score_legacy(inputs, chosen)
    meta = {
        "dataset_version": dataset_version(),
        "answers": str(answers),
        "references": references,
        "references_rule": inputs.description,
        "metrics": chosen,
        "cider_variant": cider_variant() if "cider" in chosen else None,
        "tokenizer": "pycocoevalcap PTBTokenizer (Stanford CoreNLP 3.4.1, lower-cased, punctuation removed)",
        "unscored": [{"model": m, "question_id": q, "why": "no non-empty reference"} for m, q in inputs.unscored],
        "note": "Captioning metrics, for comparison only: OwlEval is graded by humans.",
    }
    files = {
        "legacy.csv": frame_to_csv(frame),
        "legacy.json": json.dumps(meta, indent=2, ensure_ascii=False) + "\n",
    }
    write_folder(target, files, overwrite=overwrite)
    corpus = frame[frame["scope"] == "corpus"]
    metric_cols = [c for c in frame.columns if c not in ("model", "scope", "question_id", "n")]
    variant = f"; cider is {meta['cider_variant']}" if meta["cider_variant"] else ""
    table = Table(title=Text(f"legacy metrics, corpus scores per model ({references}{variant})"))
    table.add_column("model", no_wrap=True)
    table.add_column("n", justify="right")
    for c in metric_cols:
        table.add_column(c, justify="right")
    for r in corpus.to_dict("records"):
        table.add_row(Text(str(r["model"])), str(r["n"]), *(num(r[c], 3) for c in metric_cols))
    console.print(table)
    if inputs.unscored:
        status.print(Text(f"{len(inputs.unscored)} answers had no non-empty reference and were not scored (see legacy.json)"))
    console.print(Text(f"wrote legacy.csv and legacy.json to {target}"))


def register(app: typer.Typer) -> None:
    app.command("legacy")(legacy_command)
