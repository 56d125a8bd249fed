"""The judge runner: asks a judge model to grade every answer of some answer files, resumably.

Each answer's prompt (see ``prompt``) is asked ``samples`` times; a reply that is not the JSON object asked for
is asked again up to ``parse_retries`` times and then recorded as unparsed. A re-ask shows the judge only its
latest bad reply, cut to :data:`REASK_REPLY_CHARS`, so retries never grow the request past the judge's context; a
request the judge refuses as too long for its context is recorded as unparsed with that reason (a final outcome:
asking again would be refused again), not as a failed request. All requests of a batch of answers
are appended to raw.jsonl and synced together; grades.csv and meta.json are rewritten from the log at the end
of every run, interrupted or not. A re-run asks only for the answers the log has no complete judgement of
(failed ones included; unparsed ones too when asked to retry them), and refuses to continue a folder made with another judge, prompt or settings.
The resumable machinery (meta.json, the synced log, batches with progress) is :mod:`owleval.runner`'s.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import groupby
from pathlib import Path
from typing import Any, Generic, TypeVar

from owleval.adapters.base import AdapterError, Completion, Conversation, GenerationConfig, LoadOptions, ModelAdapter
from owleval.adapters.options import number_option
from owleval.adapters.registry import get_adapter_class
from owleval.answers import Answer, answer_files_in, read_answer_file
from owleval.errors import InputFileError, OwlEvalError
from owleval.judge.log import FAILED, PARSED, UNPARSED, Judgement, judgements, read_log, write_grades
from owleval.judge.parse import ReplyError, parse_reply
from owleval.judge.soft import grade_distribution
from owleval.judge.prompt import RETIRED_TEMPLATES, TEMPLATE, judge_conversation, render_prompt, template_sha256
from owleval.paths import default_data_dir
from owleval.provenance import now_iso
from owleval.questions import Question, image_path, load_questions
from owleval.redact import redact
from owleval.runner import (
    ProgressCallback,
    ResumableRun,
    in_batches,
    read_meta,
    refuse_changes,
    repair_torn_tail,
    start_meta,
)

RAW, GRADES, META = "raw.jsonl", "grades.csv", "meta.json"
#: ``-o KEY=VALUE`` settings that belong to the judge run; every other key goes to the adapter
JUDGE_OPTIONS = ("parse_retries", "temperature", "max_tokens", "seed", "logprobs", "top_logprobs")
#: settings that must be equal for a re-run to continue a judgement folder (concurrency may change)
_RESUME_SETTINGS = ("samples", "temperature", "parse_retries", "max_tokens", "seed", "logprobs")
#: alternatives per token asked for with ``-o logprobs=true`` (OpenAI allows up to 20, vLLM's default limit is 20)
DEFAULT_TOP_LOGPROBS = 10


@dataclass(frozen=True)
class JudgeSettings:
    """How the judge is asked. One sample is greedy (temperature 0); K samples use ``temperature``."""

    samples: int = 1
    temperature: float = 0.7
    parse_retries: int = 2
    max_tokens: int = 512
    seed: int = 0
    concurrency: int | None = None
    #: alternatives per generated token to ask for (``-o logprobs=true``): the grade distribution; 0 = the letter only
    logprobs: int = 0

    def config(self, sample: int) -> GenerationConfig:
        if self.samples == 1:
            return GenerationConfig(max_new_tokens=self.max_tokens, seed=self.seed, top_logprobs=self.logprobs)
        # each sample its own seed: a server that honours seeds would otherwise answer K times the same
        return GenerationConfig(max_new_tokens=self.max_tokens, do_sample=True, temperature=self.temperature, seed=self.seed + sample,
                                top_logprobs=self.logprobs)

    def to_dict(self) -> dict[str, Any]:
        return {
            "samples": self.samples,
            "temperature": 0.0 if self.samples == 1 else self.temperature,
            "parse_retries": self.parse_retries,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "concurrency": self.concurrency,
            # only when asked for, so that folders judged before this setting existed still resume
            **({"logprobs": self.logprobs} if self.logprobs else {}),
        }


def split_options(judge: str, options: Mapping[str, str], samples: int = 1, concurrency: int | None = None) -> tuple[JudgeSettings, dict[str, str]]:
    """The judge's own ``-o`` settings, and the rest for the adapter ``judge`` (with JSON mode on, unless asked
    otherwise, when the adapter has that option)."""
    if samples < 1:
        raise OwlEvalError("--samples must be at least 1")
    settings = JudgeSettings(
        samples=samples,
        temperature=number_option(options, "temperature", 0.7, minimum=0.0),
        parse_retries=number_option(options, "parse_retries", 2, minimum=0),
        max_tokens=number_option(options, "max_tokens", 512, minimum=1),
        seed=number_option(options, "seed", 0, minimum=0),
        concurrency=concurrency,
        logprobs=_logprobs_option(options),
    )
    adapter_cls = get_adapter_class(judge)
    adapter_cls.check_options(options, also=JUDGE_OPTIONS)
    rest = {k: v for k, v in options.items() if k not in JUDGE_OPTIONS}
    if "response_format" in adapter_cls.option_help:
        rest.setdefault("response_format", "json_object")
    if concurrency:
        rest["concurrency"] = str(concurrency)
    return settings, rest


def _logprobs_option(options: Mapping[str, str]) -> int:
    """``-o logprobs=true|false`` with ``-o top_logprobs=N`` (default 10): how many alternatives per token to ask for."""
    value = (options.get("logprobs") or "false").strip().lower()
    if value not in ("true", "false"):
        raise OwlEvalError(f"-o logprobs={options.get('logprobs')!r}: use true or false")
    top = number_option(options, "top_logprobs", DEFAULT_TOP_LOGPROBS, minimum=1)
    if "top_logprobs" in options and value != "true":
        raise OwlEvalError("-o top_logprobs= needs -o logprobs=true")
    return top if value == "true" else 0


def safe_name(checkpoint: str) -> str:
    """A folder name for a checkpoint: ``Qwen/Qwen2-VL-72B`` -> ``Qwen-Qwen2-VL-72B``."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "-", checkpoint.strip().strip("/")).strip("-.") or "judge"


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Item:
    """One answer to judge, with the prompt made for it."""

    answer: Answer
    image: Path
    prompt: str

    @property
    def key(self) -> tuple[str, int]:
        return (self.answer.model_id, self.answer.question_id)

    @property
    def answer_sha256(self) -> str:
        return sha256_text(self.answer.answer)


@dataclass
class JudgeResult:
    out: Path
    asked: int  # answers this run asked the judge about
    resumed: int  # answers the log had already judged
    requests: int  # requests this run sent (samples and parse retries included)
    counts: dict[str, int]  # over the whole log: judged / unparsed / failed
    warnings: list[str] = field(default_factory=list)


def load_answer_sets(sources: Sequence[Path], questions: Sequence[Question], models: Collection[str] | None = None) -> dict[str, tuple[Path, list[Answer]]]:
    """Every answer file, validated as ``owleval answers check`` does (all errors at once, file:line [field]),
    as model_id -> (file, answers); ``models`` keeps only those."""
    problems = []
    sets: dict[str, tuple[Path, list[Answer]]] = {}
    for path in answer_files_in(sources):
        found = read_answer_file(path, questions)
        problems += found.errors
        if not found.ok:
            continue
        (model_id,) = found.model_ids
        if model_id in sets:
            raise OwlEvalError(f"{path} and {sets[model_id][0]} both hold answers of model {model_id!r}: judge them separately")
        sets[model_id] = (path, found.answers)
    if problems:
        raise InputFileError(problems)
    if models is not None:
        unknown = sorted(set(models) - set(sets))
        if unknown:
            raise OwlEvalError(f"--models: {', '.join(unknown)} not in the answers ({', '.join(sorted(sets))})")
        sets = {m: sets[m] for m in sorted(models)}
    return sets


def make_items(sets: Mapping[str, tuple[Path, list[Answer]]], questions: Sequence[Question], data_dir: Path, limit: int | None = None) -> list[Item]:
    """The prompt of every answer (of the first ``limit`` of each model); a later turn's history comes from all of
    the same model's answers."""
    if limit is not None and limit < 1:
        raise OwlEvalError("--limit must be at least 1")
    by_id = {q.question_id: q for q in questions}
    items = []
    for _, answers in sets.values():
        own = {a.question_id: a for a in answers}
        for answer in answers[:limit]:
            question = by_id[answer.question_id]
            items.append(Item(answer, image_path(question, data_dir), render_prompt(question, answer, own, by_id)))
    return items


def ask(adapter: ModelAdapter, requests: Sequence[tuple[Conversation, GenerationConfig]]) -> list[Completion]:
    """Every request's outcome, in order. Adapters that offer ``complete_each`` (the openai one: concurrent, with
    usage and per-request errors) use it; any other adapter answers through ``generate``, a batch per setting,
    and a batch that fails (with any exception: a processor's ``ValueError`` on one odd answer too) is asked again
    one by one, so that one bad request fails only itself and is recorded as failed; a judge that fails on every
    answer is stopped by the run's failure streak."""
    each = getattr(adapter, "complete_each", None)
    if callable(each):
        return list(each(requests))
    results: list[Completion] = []
    for config, group in groupby(requests, key=lambda r: r[1]):
        conversations = [c for c, _ in group]
        started = time.perf_counter()
        try:
            texts = adapter.generate(conversations, config)
        except Exception as exc:  # noqa: BLE001 - one answer a local model cannot take (a processor's ValueError) fails only itself
            if len(conversations) == 1:
                error = str(exc) if isinstance(exc, AdapterError) else f"{type(exc).__name__}: {exc}"
                results.append(Completion(conversations[0].key, error=error, seconds=time.perf_counter() - started))
            else:
                for conversation in conversations:
                    results += ask(adapter, [(conversation, config)])
            continue
        seconds = (time.perf_counter() - started) / len(conversations)
        # a local adapter's answer carries its tokens' probabilities when they were asked for (ScoredText)
        results += [Completion(c.key, text=t, seconds=seconds, tokens=getattr(t, "tokens", None)) for c, t in zip(conversations, texts, strict=True)]
    return results


#: characters of an unparsable reply shown back to the judge when it is asked again (about 250 tokens)
REASK_REPLY_CHARS = 1000
#: how servers word a request that does not fit the model's context (vLLM, SGLang, TGI, OpenAI, llama.cpp)
_CONTEXT_REFUSAL = re.compile(
    r"context[ _-]?length|context window|maximum model length|max_model_len|model_max_length|"
    r"maximum (?:input|sequence) length|prompt is too long|too many (?:input )?tokens|exceed(?:s|ed)? the context|"
    r"tokens \+ `?max_new_tokens`? must be <=",
    re.IGNORECASE,
)


def cut_reply(text: str, limit: int = REASK_REPLY_CHARS) -> str:
    """The start of an unparsable reply, enough to show the judge what it said without repeating all of it."""
    return text if len(text) <= limit else text[:limit].rstrip() + " [...]"


def is_context_refusal(error: str) -> bool:
    """Whether a request's error says it does not fit the judge's context (an HTTP 400 of vLLM and the like)."""
    return bool(_CONTEXT_REFUSAL.search(error))


J = TypeVar("J")


@dataclass(frozen=True)
class Attempt(Generic[J]):
    """One request's outcome: ``status`` parsed (``parsed`` holds what the parser made of the reply), unparsed or
    failed; ``final`` is False for an unparsable reply that is asked again."""

    job: J
    attempt: int
    config: GenerationConfig
    reply: Completion
    status: str
    parsed: Any = None
    error: str | None = None
    final: bool = True


def ask_until_parsed(
    adapter: ModelAdapter,
    jobs: Sequence[J],
    settings: JudgeSettings,
    conversation: Callable[[J, tuple[str, ...]], Conversation],
    config: Callable[[J], GenerationConfig],
    parse: Callable[[str], Any],
) -> list[Attempt[J]]:
    """Ask about every job, asking again (up to ``settings.parse_retries`` times) when ``parse`` raises
    :class:`ReplyError`; returns every attempt. A re-ask carries only the previous bad reply, cut, so every attempt's
    request is about as long as the first one. Shared by the A-D judge and the pairwise judge."""
    pending: list[tuple[J, int, str | None]] = [(job, 0, None) for job in jobs]
    attempts: list[Attempt[J]] = []
    while pending:
        requests = [(conversation(job, () if bad is None else (bad,)), config(job)) for job, _, bad in pending]
        replies = ask(adapter, requests)
        retry: list[tuple[J, int, str | None]] = []
        for (job, attempt, _), (_, cfg), reply in zip(pending, requests, replies, strict=True):
            if reply.error is not None and is_context_refusal(reply.error):
                # the judge cannot read this request whole: asking again (now or in a re-run) is refused again
                attempts.append(Attempt(job, attempt, cfg, reply, UNPARSED, error=f"context length exceeded: {redact(reply.error)}"))
            elif reply.error is not None:
                attempts.append(Attempt(job, attempt, cfg, reply, FAILED, error=redact(reply.error)))
            else:
                try:
                    attempts.append(Attempt(job, attempt, cfg, reply, PARSED, parsed=parse(reply.text or "")))
                except ReplyError as exc:
                    final = attempt >= settings.parse_retries
                    attempts.append(Attempt(job, attempt, cfg, reply, UNPARSED, error=str(exc), final=final))
                    if not final:
                        retry.append((job, attempt + 1, cut_reply(reply.text or "")))
        pending = retry
    return attempts


def judge_batch(adapter: ModelAdapter, batch: Sequence[Item], settings: JudgeSettings) -> list[dict[str, Any]]:
    """Ask the judge about each answer of ``batch`` (every sample, with parse retries); the log records, grouped
    by answer."""
    ids = {item.key: uuid.uuid4().hex[:16] for item in batch}
    records: dict[tuple[str, int], list[dict[str, Any]]] = {item.key: [] for item in batch}
    jobs = [(item, k) for item in batch for k in range(settings.samples)]
    attempts = ask_until_parsed(
        adapter, jobs, settings,
        conversation=lambda job, bad: judge_conversation(job[0].prompt, job[0].image,
                                                         f"{job[0].answer.model_id} q{job[0].answer.question_id} sample {job[1]}", bad),
        config=lambda job: settings.config(job[1]),
        parse=parse_reply,
    )
    for a in attempts:
        item, sample = a.job
        reply, config = a.reply, a.config
        soft: dict[str, Any] = {}
        if settings.logprobs and a.parsed:
            probs, source = grade_distribution(a.parsed.grade, reply.tokens)
            soft = {"grade_probs": probs, "grade_probs_from": source}
        records[item.key].append({
            "judgement": ids[item.key], "model_id": item.answer.model_id, "question_id": item.answer.question_id,
            "answer_sha256": item.answer_sha256, "prompt_sha256": sha256_text(item.prompt),
            "samples": settings.samples, "sample": sample, "attempt": a.attempt,
            "temperature": config.temperature if config.do_sample else 0.0, "seed": config.seed,
            "status": a.status, "final": a.final, "grade": a.parsed.grade if a.parsed else None,
            "reason": a.parsed.reason if a.parsed else None, "error": a.error,
            "reply": redact(reply.text) if reply.text else reply.text,
            "seconds": round(reply.seconds, 4), "usage": reply.usage, "finish_reason": reply.finish_reason, "at": now_iso(),
            **soft,
        })
    return [r for item in batch for r in sorted(records[item.key], key=lambda r: (r["sample"], r["attempt"]))]


#: answers handed to a local judge at a time under ``--batch-size auto`` (it splits them to fit memory); the log is
#: synced and progress shown in these steps
AUTO_CHUNK = 64


def answers_per_batch(load_options: LoadOptions, adapter: ModelAdapter) -> int:
    """Answers per runner batch: ``--batch-size N`` (at least the adapter's preferred size, e.g. a server's
    concurrency); under ``auto`` :data:`AUTO_CHUNK` for an adapter that plans its own batches, else its preferred size."""
    if load_options.batch_size == "auto":
        return AUTO_CHUNK if callable(getattr(adapter, "plan_batches", None)) else max(1, adapter.preferred_batch_size)
    return max(1, int(load_options.batch_size), adapter.preferred_batch_size)


def _read_meta(out: Path) -> dict[str, Any] | None:
    if not (out / META).is_file() and (out / RAW).is_file():
        raise OwlEvalError(f"{out / RAW} has no {META} beside it, so its judge and settings are unknown; pass --overwrite or choose another --out")
    return read_meta(out / META)


def _check_resumable(old: dict[str, Any] | None, new: dict[str, Any], out: Path) -> None:
    if old is None:
        return
    before = (old.get("prompt_template") or {}).get("name")
    if before in RETIRED_TEMPLATES:
        raise OwlEvalError(f"{out} was judged with the prompt template {before}, which showed answers between fixed marks that "
                           f"an answer could close (forging notes or turns); this run uses {new['prompt_template']['name']}: "
                           "pass --overwrite to judge the folder again from scratch, or choose another --out")
    refuse_changes(
        [
            ("judge", old.get("adapter"), new["adapter"]),
            ("checkpoint", old.get("checkpoint"), new["checkpoint"]),
            ("prompt template", (old.get("prompt_template") or {}).get("sha256"), new["prompt_template"]["sha256"]),
            ("judge settings", old.get("answer_settings"), new.get("answer_settings")),  # e.g. the hf judge's system prompt
            *((key, (old.get("settings") or {}).get(key), new["settings"].get(key)) for key in _RESUME_SETTINGS),
        ],
        lambda what, before, now: f"{out} was judged with {what} {before!r}, this run has {now!r}; pass --overwrite to judge again "
                                  "from scratch, or choose another --out",
    )


def judge_meta(judge: str, checkpoint: str, adapter: ModelAdapter, load_options: LoadOptions, settings: JudgeSettings,
               template: str, sets: Mapping[str, tuple[Path, list[Answer]]]) -> dict[str, Any]:
    """What meta.json says of a judge run whatever its mode: the judge, its prompt and settings, the answers."""
    return {
        "adapter": judge,
        "checkpoint": checkpoint,
        "base_url": adapter.provenance().get("base_url"),
        "annotator": f"judge:{checkpoint}",
        "prompt_template": {"name": template, "sha256": template_sha256(template)},
        "settings": settings.to_dict(),
        "answer_settings": adapter.answer_settings() or None,
        "options": {k: v for k, v in load_options.options.items() if "key" not in k.lower() and k != "base_url"},
        "answers": [{"file": str(path), "model_id": m, "answers": len(a)} for m, (path, a) in sets.items()],
    }


#: what meta.json keeps of each earlier run of a judgement folder
CARRIED = ("started_at", "finished_at", "status", "requests", "provenance")


#: the files people's grading writes: never taken for a judge's, and never replaced by one
PEOPLES_FILES = ("grades.csv", "votes.csv")


def check_out_folder(out: Path, overwrite: bool, derived: str) -> None:
    """Refuse an ``--out`` that is not a judge's folder of this kind: a file; a folder whose grades.csv or votes.csv
    has no judge's raw.jsonl and meta.json beside it (people's grades: refused even with ``--overwrite``); a folder
    holding files the judge does not write (refused unless ``--overwrite``, which removes only the judge's own)."""
    if out.exists() and not out.is_dir():
        raise OwlEvalError(f"--out {out} is a file; the judge writes a folder (raw.jsonl, {derived}, meta.json)")
    if not out.is_dir():
        return
    peoples = [name for name in PEOPLES_FILES if (out / name).exists()]
    if peoples and not ((out / RAW).is_file() and (out / META).is_file()):
        raise OwlEvalError(f"{out} holds {' and '.join(peoples)} but no judge's {RAW} and {META}: these look like people's "
                           "grades, which the judge never replaces (not even with --overwrite); choose another --out")
    own = (RAW, META, derived)  # and the temporary files of their atomic writes, left by a kill -9
    foreign = sorted(p.name for p in out.iterdir()
                     if p.name not in own and not any(p.name.startswith(f".{name}.") and p.name.endswith(".tmp") for name in own))
    if foreign and not overwrite:
        listed = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise OwlEvalError(f"{out} holds files the judge did not write ({listed}); choose another --out, or pass --overwrite "
                           f"to judge there from scratch (only {RAW}, {derived} and {META} are replaced)")


def prepare_folder(out: Path, overwrite: bool, derived: str) -> list[str]:
    """Start ``out`` afresh (``overwrite``: the log, the ``derived`` file and meta.json removed), or ready its log
    to be continued (a torn last line dropped: the returned warning)."""
    if overwrite:
        for name in (RAW, derived, META):
            (out / name).unlink(missing_ok=True)
        return []
    if (out / RAW).is_file():
        return [w for w in [repair_torn_tail(out / RAW)] if w]
    return []


class FailureStreak(Generic[J]):
    """Stops a run whose items keep failing (the server is down or refuses everything): after ``limit`` items in
    a row had a failed request, :meth:`see` raises with the last error."""

    def __init__(self, limit: int, noun: str, failed: Callable[[J, Sequence[dict[str, Any]]], bool]):
        self.limit, self.noun, self.failed, self.count = limit, noun, failed, 0

    def see(self, batch: Sequence[J], records: Sequence[dict[str, Any]]) -> None:
        for item in batch:
            self.count = self.count + 1 if self.failed(item, records) else 0
        if self.count >= self.limit:
            last = next(r["error"] for r in reversed(records) if r["status"] == FAILED)
            raise OwlEvalError(f"the judge failed {self.count} {self.noun} in a row, so the run was stopped; the last error: {last}")


def _outcome(found: dict[tuple[str, int], Judgement]) -> dict[str, Any]:
    """meta.json's account of the log: counts, and which answers have no grade."""
    def listed(status: str) -> list[dict[str, Any]]:
        return [{"model_id": m, "question_id": q} for (m, q), j in found.items() if j.status == status]

    unparsed, failed = listed(UNPARSED), listed(FAILED)
    return {
        "counts": {"judged": sum(j.status == PARSED for j in found.values()), "unparsed": len(unparsed), "failed": len(failed)},
        "unparsed": unparsed,
        "failed": failed,
    }


def needs_asking(item: Item, done: Judgement | None, retry_unparsed: bool = False) -> bool:
    """Whether a run asks the judge about ``item``, given its latest complete judgement in the log: when it has
    none, when that one failed or graded another text of the answer, and (``retry_unparsed``) when the judge's
    replies could not be read. Every other judgement is kept."""
    if done is None or done.status == FAILED or done.answer_sha256 != item.answer_sha256:
        return True
    return retry_unparsed and done.status == UNPARSED


def run_judge(
    judge: str,
    *,
    answers: Sequence[Path],
    load_options: LoadOptions,
    settings: JudgeSettings,
    out: Path | None = None,
    models: Collection[str] | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    retry_unparsed: bool = False,
    data_dir: Path | None = None,
    adapter: ModelAdapter | None = None,
    on_progress: ProgressCallback | None = None,
) -> JudgeResult:
    """Judge every answer in ``answers`` with the adapter ``judge``; write ``out`` (default
    ``judgements/<checkpoint>``): raw.jsonl, grades.csv, meta.json. ``adapter`` may be passed pre-loaded.
    ``retry_unparsed`` also asks again about the answers whose replies could not be read (see :func:`needs_asking`);
    their earlier attempts stay in raw.jsonl."""
    data_dir = data_dir or default_data_dir()
    questions = load_questions(data_dir)
    sets = load_answer_sets(answers, questions, models)  # before anything is loaded or asked
    items = make_items(sets, questions, data_dir, limit)

    adapter = adapter or get_adapter_class(judge).open(load_options)
    try:
        checkpoint = adapter.options.checkpoint or adapter.default_checkpoint or judge
        out = out or Path("judgements") / safe_name(checkpoint)
        raw_path, meta_path = out / RAW, out / META
        check_out_folder(out, overwrite, GRADES)
        old = None if overwrite else _read_meta(out)
        meta = start_meta({
            **judge_meta(judge, checkpoint, adapter, load_options, settings, TEMPLATE, sets),
            "limit": limit,
            "retry_unparsed": retry_unparsed,
        }, old, CARRIED)
        _check_resumable(old, meta, out)
        warnings = prepare_folder(out, overwrite, GRADES)
        done = judgements(read_log(raw_path))
        pending = [item for item in items if needs_asking(item, done.get(item.key), retry_unparsed)]
        out.mkdir(parents=True, exist_ok=True)

        total, resumed = len(items), len(items) - len(pending)
        batch_size = answers_per_batch(load_options, adapter)
        streak = FailureStreak(max(8, batch_size), "answers",  # the judge is down or refuses everything
                               lambda item, records: any(r["status"] == FAILED for r in records if (r["model_id"], r["question_id"]) == item.key))

        def finish(meta: dict[str, Any]) -> None:
            meta.update(_outcome(write_grades(raw_path, out / GRADES, meta["annotator"])))
            meta["requests"] = run.written
            meta["answers_asked"] = run.asked

        with ResumableRun(meta_path, meta, raw_path, adapter, finish) as run:
            for batch, records in run.batches(in_batches(pending, batch_size), lambda batch: judge_batch(adapter, batch, settings),
                                              resumed=resumed, total=total, on_progress=on_progress):
                streak.see(batch, records)
    finally:
        adapter.close()
    return JudgeResult(out, run.asked, resumed, run.written, meta["counts"], warnings)

