"""``owleval judge``: grade answer files A-D with a multimodal LLM judge, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from owleval.adapters.options import parse_option_pairs
from owleval.console import console, resumable_run_progress, warn
from owleval.errors import OwlEvalError


def judge(
    answers: Annotated[list[Path], typer.Option("--answers", "-a", help="Answers file or folder of *.jsonl files; repeatable.")],
    judge_model: Annotated[str, typer.Option("--judge", "-j", help="Adapter serving the judge (see `owleval models`); openai is the main path.")],
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", "-c", help="The judge model: the served model name for openai (e.g. gpt-4o).")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="Server URL for --judge openai, e.g. http://localhost:8000/v1")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", min=1, help="Requests in flight for --judge openai.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Folder for grades.csv, raw.jsonl, meta.json. Default: judgements/<checkpoint>")] = None,
    samples: Annotated[int, typer.Option("--samples", min=1, help="Ask K times at temperature 0.7 and take the median grade (ties to the lower); 1 is greedy.")] = 1,
    models: Annotated[Optional[str], typer.Option("--models", help="Judge only these model ids, comma-separated.")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", min=1, help="Judge only the first N answers of each model.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="KEY=VALUE: parse_retries (2), temperature (0.7), max_tokens (512), seed (0), logprobs (false: true asks for the grade distribution), top_logprobs (10), or an adapter option; repeatable.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N, for a judge that runs here (not openai).")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="auto | float32 | bfloat16 | float16, for a judge that runs here.")] = "auto",
    batch_size: Annotated[str, typer.Option("--batch-size", help="N or auto: answers per generate call for a judge that runs here (auto: groups that fit memory, as in generate); openai uses --concurrency.")] = "1",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Judge again from scratch instead of resuming the --out folder.")] = False,
    retry_unparsed: Annotated[bool, typer.Option("--retry-unparsed", help="Also ask again about the answers whose replies could not be read; every other judgement is kept.")] = False,
    data: Annotated[Optional[Path], typer.Option("--data", help="Data-set folder (default: the installed one).")] = None,
    pairwise: Annotated[bool, typer.Option("--pairwise", help="Judge pairs of answers (which is better), each pair in both orders; writes votes.csv.")] = False,
    pairs: Annotated[Optional[str], typer.Option("--pairs", help="Pairwise: 'all' (every pair of models on every question; the default).")] = None,
    against: Annotated[Optional[str], typer.Option("--against", help="Pairwise: each model against this baseline model.")] = None,
    pairs_per_question: Annotated[Optional[int], typer.Option("--pairs-per-question", min=1, help="Pairwise: K model pairs per question, every model pair about equally often.")] = None,
    sample: Annotated[Optional[int], typer.Option("--sample", min=1, help="Pairwise: only K items per model pair, stratified by turn type (as a study's --sample).")] = None,
    seed: Annotated[int, typer.Option("--seed", help="Pairwise: seed of the pair selection (use the study's to judge the same pairs).")] = 0,
) -> None:
    """Grade answers A-D with an LLM judge; grades.csv has the columns of `owleval grades export`.

    The judge sees the image, the question (for a later turn, the earlier questions with the same model's own
    earlier answers), the answer and the rubric, never the model's name, and replies with a JSON object
    {"grade", "reason"}. Replies that are not such an object are asked again (-o parse_retries=2), then
    recorded as unparsed: never guessed. Re-running the same command resumes (and asks again about failed
    requests); add --retry-unparsed to ask again about the unparsed answers only. Stop any time with Ctrl-C.

    With --pairwise the judge compares two answers instead, each pair in both orders, and writes votes.csv; the
    pairs are chosen as in `owleval study create --pairwise` (--pairs all, --against, --pairs-per-question, --sample).

    Example:
      owleval judge --answers answers/ --judge openai --checkpoint gpt-4o --base-url https://api.openai.com/v1 --concurrency 16
    """
    from owleval.adapters.base import LoadOptions
    from owleval.commands.generate import _parse_batch_size
    from owleval.judge.run import run_judge, split_options

    options = parse_option_pairs(option or [])
    if base_url:
        options["base_url"] = base_url
    settings, adapter_options = split_options(judge_model, options, samples, concurrency)
    wanted = [m.strip() for m in models.split(",") if m.strip()] if models else None
    load_options = LoadOptions(checkpoint=checkpoint, device=device, dtype=dtype, batch_size=_parse_batch_size(batch_size, device),
                               options=adapter_options)
    kept = "the judgements made so far are kept (grades.csv is up to date); run the same command again to resume"
    if pairwise:
        if settings.logprobs:
            raise OwlEvalError("-o logprobs=true gives A-D grade distributions; the pairwise judge names a winner: leave it out")
        _judge_pairwise(judge_model, answers, load_options, settings, out, wanted, overwrite, retry_unparsed, data,
                        (pairs, against, pairs_per_question, sample, seed), limit)
        return
    if pairs is not None or against is not None or pairs_per_question is not None or sample is not None:
        raise OwlEvalError("--pairs, --against, --pairs-per-question and --sample choose pairs for --pairwise; add --pairwise")
    with resumable_run_progress(f"loading {judge_model}", "judge", kept) as on_progress:
        result = run_judge(
            judge_model, answers=answers, load_options=load_options, settings=settings, out=out, models=wanted,
            limit=limit, overwrite=overwrite, retry_unparsed=retry_unparsed, data_dir=data, on_progress=on_progress,
        )
    for message in result.warnings:
        warn(message)
    counts = result.counts
    console.print(
        f"[green]ok[/] {result.out}: {result.asked} answers asked this run ({result.requests} requests), "
        f"{result.resumed} judged before; in all {counts['judged']} graded, {counts['unparsed']} unparsed, "
        f"{counts['failed']} failed (grades.csv, raw.jsonl, meta.json)",
        highlight=False,
    )
    if counts["unparsed"]:
        warn(f"{counts['unparsed']} answers have no grade: the judge's replies could not be read (listed in meta.json, replies in raw.jsonl); "
             "add --retry-unparsed to ask about them again")
    if counts["failed"]:
        warn(f"{counts['failed']} answers failed (requests refused or unanswered; see raw.jsonl): run the same command again to retry them")
        raise typer.Exit(1)


def _judge_pairwise(judge_model, answers, load_options, settings, out, models, overwrite, retry_unparsed, data, flags, limit) -> None:
    """``owleval judge --pairwise``: the pairs of the study flags, each asked in both orders."""
    from owleval.judge.pairwise import run_pairwise_judge
    from owleval.study.pairs import design_from_flags

    if limit is not None:
        raise OwlEvalError("--limit is for the A-D judge; choose fewer pairs with --against, --pairs-per-question or --sample")
    design = design_from_flags(*flags)
    kept = "the pairs judged so far are kept (votes.csv is up to date); run the same command again to resume"
    with resumable_run_progress(f"loading {judge_model}", "judge", kept) as on_progress:
        result = run_pairwise_judge(judge_model, answers=answers, load_options=load_options, settings=settings, design=design,
                                    out=out, models=models, overwrite=overwrite, retry_unparsed=retry_unparsed, data_dir=data,
                                    on_progress=on_progress)
    for message in result.warnings:
        warn(message)
    counts, pc = result.counts, result.consistency
    rate = "n/a" if pc["rate"] is None else f"{pc['rate']:.2f} (95% CI {pc['ci95'][0]:.2f}-{pc['ci95'][1]:.2f}, n={pc['pairs']} pairs)"
    console.print(
        f"[green]ok[/] {result.out}: {result.asked} pairs asked this run ({result.requests} requests, both orders), "
        f"{result.resumed} judged before, {result.identical} identical (ties, not asked); in all {counts['judged']} voted, "
        f"{counts['unparsed']} unparsed, {counts['failed']} failed; position consistency {rate} (votes.csv, raw.jsonl, meta.json)",
        highlight=False,
    )
    if counts["unparsed"]:
        named = ", ".join(f"question {p['question_id']} {p['model_a']} vs {p['model_b']}" for p in result.unparsed[:5])
        more = f" and {len(result.unparsed) - 5} more" if len(result.unparsed) > 5 else ""
        warn(f"{counts['unparsed']} pairs have no vote: a reply named neither answer or could not be read ({named}{more}; "
             "listed in meta.json, replies in raw.jsonl); add --retry-unparsed to ask about them again")
    if counts["failed"]:
        warn(f"{counts['failed']} pairs failed (requests refused or unanswered; see raw.jsonl): run the same command again to retry them")
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("judge")(judge)
