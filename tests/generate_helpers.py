"""Small deterministic adapters for testing the generation runner (no model weights)."""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Sequence

from owleval.adapters.base import Conversation, GenerationConfig, LoadOptions, ModelAdapter


class EchoAdapter(ModelAdapter):
    """Answers with the question id, the number of earlier turns and a hash of the history it was shown."""

    name = "echo"
    description = "test adapter"

    def __init__(self, options: LoadOptions | None = None):
        super().__init__(options or LoadOptions())
        self.calls: list[list[Conversation]] = []

    @classmethod
    def load(cls, options: LoadOptions) -> EchoAdapter:
        return cls(options)

    def generate(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        self.calls.append(list(conversations))
        answers = []
        for c in conversations:
            seen = "|".join(f"{t.text}=>{t.answer}" for t in c.history)
            digest = hashlib.sha256(seen.encode()).hexdigest()[:8]
            answers.append(f"{c.key} after {len(c.history)} turns [{digest}] <b>html</b>")
        return answers


class KillAfterAdapter(EchoAdapter):
    """Kills its own process with SIGKILL when asked for batch number ``kill_at`` (1-based)."""

    def __init__(self, kill_at: int):
        super().__init__()
        self.kill_at = kill_at

    def generate(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        if len(self.calls) + 1 == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().generate(conversations, config)
