"""The generation runner: asks an adapter to answer the OwlEval questions and appends each answer as it comes.

Resumable by construction: answers are appended one line at a time and synced per batch, so a kill loses at
most the batch in flight; a re-run reads what is there, drops a torn last line, and asks only for the rest.
Provenance goes to ``<out>.meta.json``, rewritten atomically at the start and the end of every run. The
resumable machinery is :mod:`owleval.runner`'s; what is its own here is the question waves and the answers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from owleval.adapters.base import Conversation, GenerationConfig, ImageRef, LoadOptions, ModelAdapter, Turn
from owleval.adapters.registry import get_adapter_class
from owleval.answers import Answer, read_answer_file
from owleval.errors import OwlEvalError
from owleval.paths import default_data_dir
from owleval.provenance import checkpoint_fingerprint, legacy_fingerprint, now_iso
from owleval.questions import Question, image_path, load_questions
from owleval.runner import ProgressCallback, ResumableRun, read_meta, refuse_changes, repair_torn_tail, start_meta

#: settings that must be equal for a re-run to continue an existing answers file
_RESUME_KEYS = ("adapter", "model_id", "checkpoint", "checkpoint_fingerprint", "generation", "answer_settings")


@dataclass
class GenerationResult:
    out: Path
    meta_path: Path
    generated: int  # answers written by this run
    resumed: int  # answers already in the file when the run started
    total: int  # answers the run was asked for (including needed earlier turns)
    warnings: list[str] = field(default_factory=list)


def parse_question_ids(spec: str) -> list[int]:
    """``"1,2,5-8"`` -> ``[1, 2, 5, 6, 7, 8]``."""
    ids: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if lo > hi:
                    raise ValueError
                ids += range(lo, hi + 1)
            else:
                ids.append(int(part))
        except ValueError:
            raise OwlEvalError(f"--questions: {part!r} is not a question id or a range like 5-8") from None
    return ids


def select_questions(questions: Sequence[Question], ids: Iterable[int] | None, limit: int | None) -> tuple[list[Question], list[int]]:
    """The questions to answer, plus the ids added because a chosen later turn needs its earlier turns."""
    by_id = {q.question_id: q for q in questions}
    if ids is None:
        chosen = list(questions)
    else:
        unknown = sorted(set(ids) - set(by_id))
        if unknown:
            raise OwlEvalError(f"--questions: unknown question ids {unknown}; the set has ids {min(by_id)}-{max(by_id)}")
        chosen = [by_id[i] for i in sorted(set(ids))]
    if limit is not None:
        if limit < 1:
            raise OwlEvalError("--limit must be at least 1")
        chosen = chosen[:limit]
    wanted = {q.question_id for q in chosen}
    added = sorted({e for q in chosen for e in q.earlier_turns} - wanted)
    return sorted(chosen + [by_id[i] for i in added], key=lambda q: q.question_id), added


def build_conversation(question: Question, answers: dict[int, Answer], data_dir: Path) -> Conversation:
    """The question as the last turn, after the earlier turns of its dialogue with this model's own answers.

    All turns of an OwlEval dialogue are about one image; it is attached to the first turn.
    """
    image = ImageRef(image_path(question, data_dir))
    ids = [*question.earlier_turns, question.question_id]
    turns = []
    for index, qid in enumerate(ids):
        earlier = answers.get(qid)
        text = earlier.question if earlier is not None else question.question
        turns.append(Turn(text=text, images=(image,) if index == 0 else (), answer=earlier.answer if qid != question.question_id else None))
    return Conversation(turns=tuple(turns), key=f"q{question.question_id}")


def _read_existing(out: Path, meta_path: Path, questions: Sequence[Question], overwrite: bool) -> tuple[dict[int, Answer], dict[str, Any] | None, list[str]]:
    if overwrite or not out.exists():  # an overwritten file is removed only once the model has loaded
        return {}, None, []
    warnings = [w for w in [repair_torn_tail(out)] if w]
    found = read_answer_file(out, questions)
    if not found.ok:
        listing = "\n".join(str(p) for p in found.errors[:10])
        raise OwlEvalError(f"{out} cannot be resumed; fix it or pass --overwrite:\n{listing}")
    return {a.question_id: a for a in found.answers}, read_meta(meta_path), warnings


def _check_resumable(meta: dict[str, Any] | None, current: dict[str, Any], out: Path) -> None:
    if meta is None:
        return
    _refuse_keys_added_since(meta.get("answer_settings"), current.get("answer_settings"), out)
    earlier = {key: meta.get(key) for key in _RESUME_KEYS}
    if _fingerprinted_before_v2(earlier["checkpoint_fingerprint"], current):
        earlier["checkpoint_fingerprint"] = current["checkpoint_fingerprint"]  # still the same files: resumes
    refuse_changes(
        ((key, earlier[key], current.get(key)) for key in _RESUME_KEYS),
        lambda key, before, now: f"{out} was made with {_shown(key, before, now)}; "
                                 "pass --overwrite to start again, or choose another --out",
    )


def _shown(key: str, before: Any, now: Any) -> str:
    """``key=before, this run has key=now``; for two content fingerprints, the files whose content differs."""
    old, new = (f.get("files") if isinstance(f, dict) else None for f in (before, now))
    if key == "checkpoint_fingerprint" and isinstance(old, dict) and isinstance(new, dict):
        changed = sorted(name for name in old.keys() | new.keys() if old.get(name) != new.get(name))
        return (f"other checkpoint contents (checkpoint_fingerprint sha256 {before.get('sha256')}, this run has "
                f"{now.get('sha256')}; files added, removed or changed: {', '.join(changed)})")
    return f"{key}={before!r}, this run has {key}={now!r}"


def _refuse_keys_added_since(before: Any, now: Any, out: Path) -> None:
    """A file whose answer settings lack a key this run records was made by an older OwlEval whose prompts may
    differ (e.g. before answers were neutralised): refused naming the key, never mixed."""
    if before is None:  # adapters that recorded no answer settings at all then
        before = {}
    if not isinstance(before, dict) or not isinstance(now, dict):
        return
    added = [key for key in now if key not in before]
    if added:
        raise OwlEvalError(
            f"{out} was made before OwlEval recorded answer_settings.{added[0]} (this run: {now[added[0]]!r}), so its "
            "prompts may differ from this run's; pass --overwrite to start again, or choose another --out"
        )


def _fingerprinted_before_v2(before: Any, current: dict[str, Any]) -> bool:
    """Whether ``before`` is a fingerprint from before weight contents were hashed that still matches the
    checkpoint (by the old recipe): such a file resumes, and its meta then records the new fingerprint."""
    if not isinstance(before, dict) or "scheme" in before or before.get("kind") not in ("directory", "hub"):
        return False
    return before == legacy_fingerprint(current.get("checkpoint"))


def _batch_size(load_options: LoadOptions, adapter: ModelAdapter) -> int | None:
    """Questions per ``adapter.generate`` call; None under ``--batch-size auto`` for an adapter that plans its own
    batches (a local model: every question whose earlier turns are answered goes in one call, and the adapter
    groups them to fit memory). Other adapters (a server, a replay) take their preferred size under auto."""
    if load_options.batch_size == "auto":
        return None if callable(getattr(adapter, "plan_batches", None)) else max(1, adapter.preferred_batch_size)
    return max(1, int(load_options.batch_size), adapter.preferred_batch_size)


def run_generation(
    model: str,
    *,
    load_options: LoadOptions,
    config: GenerationConfig,
    out: Path | None = None,
    question_ids: Iterable[int] | None = None,
    limit: int | None = None,
    overwrite: bool = False,
    model_id: str | None = None,
    data_dir: Path | None = None,
    adapter: ModelAdapter | None = None,
    on_progress: ProgressCallback | None = None,
) -> GenerationResult:
    """Answer the selected questions with ``model`` and append them to ``out`` (default ``answers/<model>.jsonl``).

    ``on_progress(done, total)`` is called after every batch. ``adapter`` may be passed pre-loaded (tests, notebooks).
    """
    adapter_cls = type(adapter) if adapter is not None else get_adapter_class(model)
    adapter_cls.check_options(load_options.options)  # a typo in -o fails here, before any file is read or weight loaded
    if adapter is None and adapter_cls.checkpoint_is_local and load_options.device.startswith("cuda"):
        from owleval.adapters.base import resolve_device

        resolve_device(load_options.device)  # no CUDA here: said at once, before the data or any checkpoint is read
    data_dir = data_dir or default_data_dir()
    questions = load_questions(data_dir)
    selected, added = select_questions(questions, question_ids, limit)
    out = out or Path("answers") / f"{model}.jsonl"
    meta_path = out.with_name(out.name + ".meta.json")
    done, old_meta, warnings = _read_existing(out, meta_path, questions, overwrite)
    if added:
        warnings.append(f"also answering earlier turns {added}: later turns need them as history")

    adapter = adapter or adapter_cls.load(load_options)
    model_id = model_id or (old_meta or {}).get("model_id") or adapter.default_model_id()
    # a resumed file keeps what its earlier runs reported (e.g. a server's token usage) in previous_runs
    meta = start_meta({
        "adapter": model,
        "model_id": model_id,
        "checkpoint": load_options.checkpoint or adapter.default_checkpoint,
        "checkpoint_fingerprint": checkpoint_fingerprint(load_options.checkpoint, local=adapter.checkpoint_is_local),
        "generation": config.to_dict(),
        "answer_settings": adapter.answer_settings() or None,  # None (not {}) for adapters without any: older files match
        "seed": config.seed,
        "batch_size": _batch_size(load_options, adapter) or "auto",
        "device": load_options.device,
        "dtype": load_options.dtype,
        "options": {k: v for k, v in load_options.options.items() if "key" not in k.lower()},
    }, old_meta, carried=("started_at", "finished_at", "status", "answers_written", "provenance"))
    _check_resumable(old_meta, meta, out)
    if done and model_id not in {a.model_id for a in done.values()}:
        raise OwlEvalError(f"{out} holds answers of another model_id; pass --overwrite or choose another --out")
    if overwrite:
        out.unlink(missing_ok=True)

    pending = [q for q in selected if q.question_id not in done]
    batch_size = _batch_size(load_options, adapter)
    resumed = len(selected) - len(pending)
    total = len(selected)

    def waves() -> Iterator[list[Question]]:
        """The next batch of questions whose earlier turns are answered, until none is left."""
        while remaining := [q for q in pending if q.question_id not in done]:
            ready = [q for q in remaining if all(e in done for e in q.earlier_turns)]
            if not ready:  # cannot happen: earlier turns are always selected too
                raise OwlEvalError("internal error: no question is ready to answer")
            yield ready[:batch_size] if batch_size else ready  # auto: the whole wave; the adapter splits it

    def answer(batch: Sequence[Question]) -> list[Answer]:
        conversations = [build_conversation(q, done, data_dir) for q in batch]
        started = time.perf_counter()
        texts = adapter.generate(conversations, config)
        seconds = time.perf_counter() - started
        if len(texts) != len(batch) or not all(isinstance(t, str) for t in texts):
            raise OwlEvalError(f"adapter {model!r} returned {len(texts)} answers for {len(batch)} questions, or non-strings")
        return [
            Answer(q.question_id, q.image, q.question, text, model_id,
                   {"seconds": round(seconds / len(batch), 4), "batch_seconds": round(seconds, 4), "batch_size": len(batch), "generated_at": now_iso()})
            for q, text in zip(batch, texts, strict=True)
        ]

    def finish(meta: dict[str, Any]) -> None:
        meta["answers_written"] = run.asked
        meta["answers_in_file"] = len(done)

    random.seed(config.seed)
    try:
        with ResumableRun(meta_path, meta, out, adapter, finish) as run:
            for _, new in run.batches(waves(), answer, resumed=resumed, total=total, on_progress=on_progress, to_line=Answer.to_json):
                done.update((a.question_id, a) for a in new)
    finally:
        adapter.close()
    return GenerationResult(out, meta_path, run.asked, resumed, total, warnings)
