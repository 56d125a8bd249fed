"""``answers-file``: replays an existing answers file, so pipelines can be re-run without a model."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from owleval.adapters.base import AdapterError, Conversation, GenerationConfig, LoadOptions, ModelAdapter
from owleval.answers import Answer, load_answers
from owleval.manifest import sha256_of
from owleval.questions import load_questions

_KEY_RE = re.compile(r"q([0-9]+)")  # matched whole (fullmatch)


class AnswersFileAdapter(ModelAdapter):
    name: ClassVar[str] = "answers-file"
    description: ClassVar[str] = "Replays the answers of an existing answers file (JSONL); --checkpoint is its path."
    option_help: ClassVar[dict[str, str]] = {"answers": "path of the answers file (instead of --checkpoint)"}
    option_defaults: ClassVar[dict[str, str]] = {"answers": "--checkpoint"}

    def __init__(self, options: LoadOptions, path: Path, answers: list[Answer]):
        super().__init__(options)
        self.path = path
        self.by_id = {a.question_id: a for a in answers}
        self.by_text: dict[str, list[Answer]] = {}
        for a in answers:
            self.by_text.setdefault(a.question.strip(), []).append(a)

    @classmethod
    def load(cls, options: LoadOptions) -> AnswersFileAdapter:
        raw = options.options.get("answers") or options.checkpoint
        if not raw:
            raise AdapterError("answers-file needs the answers file: --checkpoint FILE (or -o answers=FILE)")
        path = Path(raw).expanduser()
        if not path.is_file():
            raise AdapterError(f"answers file {path} not found")
        return cls(options, path, load_answers(path, load_questions()).answers)

    def _lookup(self, conversation: Conversation) -> Answer:
        match = _KEY_RE.fullmatch(conversation.key)
        if match and int(match.group(1)) in self.by_id:
            return self.by_id[int(match.group(1))]
        candidates = self.by_text.get(conversation.current.text.strip(), [])
        if len(candidates) == 1:
            return candidates[0]
        what = "several answers match" if candidates else "no answer matches"
        raise AdapterError(f"{self.path}: {what} conversation {conversation.key or conversation.current.text!r}")

    def generate(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        return [self._lookup(c).answer for c in conversations]

    def default_model_id(self) -> str:
        return next(iter(self.by_id.values())).model_id

    def provenance(self) -> dict[str, Any]:
        return {**super().provenance(), "checkpoint": str(self.path), "answers_sha256": sha256_of(self.path)}
