"""``owleval generate``: answer the OwlEval questions with a model, resumably."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from owleval.adapters.options import parse_option_pairs
from owleval.console import console, resumable_run_progress, warn
from owleval.errors import OwlEvalError


def _parse_batch_size(value: str | None, device: str) -> int | str:
    """``--batch-size``: a positive whole number or ``auto``; unset, auto when the run is on CUDA, else 1."""
    if value is None:
        if device.startswith("cuda"):
            return "auto"
        if device == "auto":
            import torch

            return "auto" if torch.cuda.is_available() else 1
        return 1
    if value.strip().lower() == "auto":
        return "auto"
    try:
        size = int(value)
    except ValueError:
        raise OwlEvalError(f"--batch-size {value!r}: expected a whole number or auto") from None
    if size < 1:
        raise OwlEvalError(f"--batch-size {value!r}: must be at least 1")
    return size


def generate(
    model: Annotated[str, typer.Option("--model", "-m", help="Adapter name (see `owleval models`): mplug-owl, llava, minigpt4, openai, answers-file, ...")],
    checkpoint: Annotated[Optional[str], typer.Option("--checkpoint", "-c", help="Local folder or hub id (the adapter's default if omitted); the served model name for openai; the file for answers-file.")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", help="Answers file to write (JSONL). Default: answers/<model>.jsonl")] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", help="Answer only the first N selected questions.")] = None,
    questions: Annotated[Optional[str], typer.Option("--questions", help="Question ids, e.g. 1,2,5-8. Earlier turns of a chosen dialogue turn are added.")] = None,
    batch_size: Annotated[Optional[str], typer.Option("--batch-size", help="Conversations per generate call: N, or auto (every answerable question at once, split to fit memory). Default: auto on CUDA, 1 otherwise.")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N")] = "auto",
    dtype: Annotated[str, typer.Option("--dtype", help="auto | float32 | bfloat16 | float16 (auto: bf16 on GPU, fp32 on CPU)")] = "auto",
    seed: Annotated[int, typer.Option("--seed", help="Random seed (sampling, and anything else random).")] = 0,
    max_new_tokens: Annotated[int, typer.Option("--max-new-tokens", min=1, help="Longest answer, in tokens.")] = 512,
    do_sample: Annotated[bool, typer.Option("--sample/--greedy", help="Sample (seeded) instead of greedy decoding.")] = False,
    temperature: Annotated[float, typer.Option("--temperature", help="Sampling temperature.")] = 1.0,
    top_p: Annotated[float, typer.Option("--top-p", help="Nucleus sampling threshold.")] = 1.0,
    top_k: Annotated[Optional[int], typer.Option("--top-k", help="Top-k sampling.")] = None,
    num_beams: Annotated[int, typer.Option("--num-beams", min=1, help="Beam search width.")] = 1,
    model_id: Annotated[Optional[str], typer.Option("--model-id", help="model_id written into the answers (default: from the adapter and checkpoint).")] = None,
    base_url: Annotated[Optional[str], typer.Option("--base-url", help="Server URL for --model openai, e.g. http://localhost:8000/v1")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", min=1, help="Requests in flight for --model openai.")] = None,
    option: Annotated[Optional[list[str]], typer.Option("--option", "-o", help="Adapter-specific KEY=VALUE (see `owleval models`); repeatable.")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again instead of resuming an existing answers file.")] = False,
    data: Annotated[Optional[Path], typer.Option("--data", help="Data-set folder (default: the installed one).")] = None,
) -> None:
    """Answer the OwlEval questions with a model and write an answers file plus <out>.meta.json (provenance).

    Dialogues are answered turn by turn: a later turn sees the earlier questions and the model's own answers.
    Re-running the same command resumes: finished questions are skipped. Stop any time with Ctrl-C.

    Examples:
      owleval generate --model mplug-owl --batch-size 8 --device cuda
      owleval generate --model openai --checkpoint my-model --base-url http://localhost:8000/v1 --concurrency 16
    """
    from owleval.adapters.base import GenerationConfig, LoadOptions
    from owleval.adapters.registry import get_adapter_class
    from owleval.generate import parse_question_ids, run_generation

    options = parse_option_pairs(option or [])
    if base_url:
        options["base_url"] = base_url
    if concurrency:
        options["concurrency"] = str(concurrency)
    get_adapter_class(model).check_options(options)  # an unknown model or -o key is refused before anything loads
    load_options = LoadOptions(checkpoint=checkpoint, device=device, dtype=dtype,
                               batch_size=_parse_batch_size(batch_size, device), options=options)
    config = GenerationConfig(
        max_new_tokens=max_new_tokens, do_sample=do_sample, temperature=temperature, top_p=top_p,
        top_k=top_k, num_beams=num_beams, seed=seed,
    )
    ids = parse_question_ids(questions) if questions else None
    kept = "the answers written so far are kept; run the same command again to resume"
    with resumable_run_progress(f"loading {model}", f"generate {model}", kept) as on_progress:
        result = run_generation(
            model, load_options=load_options, config=config, out=out, question_ids=ids, limit=limit,
            overwrite=overwrite, model_id=model_id, data_dir=data, on_progress=on_progress,
        )
    for message in result.warnings:
        warn(message)
    console.print(
        f"[green]ok[/] {result.out}: {result.generated} answers generated, {result.resumed} already there "
        f"({result.total} asked for); provenance in {result.meta_path}",
        highlight=False,
    )


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
