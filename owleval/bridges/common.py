"""What the three kit bridges share: dialogues as kit samples, the data-set digest, model-name normalisation.

One kit sample is one dialogue (a run of turns about one image, see :mod:`owleval.questions`), named
``owleval-<first question_id>``; the single-pass task has one sample per question, named the same way after its
only question. Every export and every sample carries the data-set manifest's digest, so an import can refuse a run
made on another version of the set.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from owleval.errors import OwlEvalError
from owleval.manifest import load_manifest
from owleval.questions import Question, image_path

#: what every kit's task is named, and the single-pass fallback's name
TASK_NAME = "owleval"
SINGLE_TASK_NAME = "owleval_single"
#: the protocol an answers file's provenance states: each later turn saw the model's own earlier answers, or not
MULTI_TURN = "multi-turn"
SINGLE_PASS = "single-pass"
SAMPLE_PREFIX = "owleval-"
#: the export's own description, written beside the kit files (digest, versions, what each sample holds)
EXPORT_INFO = "owleval_export.json"


@dataclass(frozen=True)
class Dialogue:
    """One kit sample: the questions asked in turn about one image."""

    questions: tuple[Question, ...]

    @property
    def sample_id(self) -> str:
        return sample_id(self.questions[0].question_id)

    @property
    def question_ids(self) -> list[int]:
        return [q.question_id for q in self.questions]

    @property
    def image(self) -> str:
        return self.questions[0].image


def sample_id(first_question_id: int) -> str:
    return f"{SAMPLE_PREFIX}{first_question_id}"


def dialogues(questions: Sequence[Question], *, single_pass: bool = False) -> list[Dialogue]:
    """The set's dialogues in question order; with ``single_pass`` every question stands alone."""
    if single_pass:
        return [Dialogue((q,)) for q in questions]
    grouped: dict[int, list[Question]] = {}
    for q in questions:
        grouped.setdefault(q.dialogue_id, []).append(q)
    return [Dialogue(tuple(sorted(turns, key=lambda q: q.turn_index))) for _, turns in sorted(grouped.items())]


def dataset_stamp() -> dict[str, str]:
    """The data set's name and manifest digest, as every export and sample carries them."""
    manifest = load_manifest()
    return {"dataset": manifest.name, "dataset_digest": manifest.digest}


def export_info(kit: str, tasks: dict[str, int], **extra: Any) -> str:
    """The JSON written as :data:`EXPORT_INFO`: what was exported, from which data set and OwlEval version."""
    from owleval import __version__

    doc = {"kit": kit, "owleval_version": __version__, **dataset_stamp(), "samples": tasks, **extra}
    return json.dumps(doc, indent=2) + "\n"


def image_file(question: Question, data_dir: Path | None) -> Path:
    """The question's image as an absolute path (kits run from other working directories)."""
    return image_path(question, data_dir).resolve()


def image_data_uri(path: Path) -> str:
    """The image embedded as a ``data:`` URI, its type read from the bytes (cases/49.jpg is a PNG)."""
    data = path.read_bytes()
    mime = "image/png" if data.startswith(b"\x89PNG") else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def prepare_out_dir(out: Path, names: Sequence[str], overwrite: bool) -> None:
    """Refuse to write over earlier export files unless ``overwrite``; create ``out``."""
    if out.exists() and not out.is_dir():
        raise OwlEvalError(f"{out} is a file, not a folder")
    taken = [str(out / n) for n in names if (out / n).exists()]
    if taken and not overwrite:
        raise OwlEvalError(f"would overwrite {', '.join(taken)}; pass --overwrite to replace")
    out.mkdir(parents=True, exist_ok=True)


_ALLOWED = re.compile(r"[^A-Za-z0-9._:+-]+")
#: model-argument keys whose value names the model, tried in this order
MODEL_KEYS = ("pretrained", "model", "model_name", "model_id", "model_path", "checkpoint", "path")


def normalise_model_name(raw: str) -> str:
    """A kit's model name as an OwlEval model id.

    The rule: from a ``key=value,key=value`` argument string keep the value of the first of :data:`MODEL_KEYS`
    present (else the first value); drop any ``key=``; strip ``./`` and surrounding slashes; turn each ``/`` into
    ``--``; replace any other run of characters outside ``A-Z a-z 0-9 . _ : + -`` by ``-``; keep at most 100
    characters. ``pretrained=org/name,dtype=float16`` -> ``org--name``; ``/models/llava-7b/`` -> ``models--llava-7b``.
    """
    text = raw.strip()
    if "=" in text:
        pairs = [part.split("=", 1) for part in text.split(",") if "=" in part]
        values = {k.strip(): v.strip() for k, v in pairs}
        text = next((values[k] for k in MODEL_KEYS if values.get(k)), pairs[0][1].strip() if pairs else text)
    while text.startswith("./"):
        text = text[2:]
    text = text.strip("/").replace("/", "--")
    text = _ALLOWED.sub("-", text).strip("-.") or "model"
    return text[:100]


def model_ids_for(raw_names: Sequence[str], override: str | None) -> dict[str, str]:
    """Each distinct kit model name -> its model id; refuses two names that normalise to one id, and an
    override when the runs hold more than one model."""
    distinct = list(dict.fromkeys(raw_names))
    if override is not None:
        if len(distinct) > 1:
            raise OwlEvalError(f"--model-id names one model, but the runs hold {len(distinct)}: {distinct}; import them one at a time")
        return {name: override for name in distinct}
    ids: dict[str, str] = {}
    taken: dict[str, str] = {}
    for name in distinct:
        model_id = normalise_model_name(name)
        if model_id in taken:
            raise OwlEvalError(f"kit models {taken[model_id]!r} and {name!r} both become model id {model_id!r}: "
                               "import them one at a time with --model-id")
        taken[model_id] = name
        ids[name] = model_id
    return ids
