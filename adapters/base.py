"""The one interface every model implements, and the records that cross it.

An adapter is loaded once (checkpoint, device, dtype, adapter-specific options) and then answers batches of
conversations: one answer string per conversation, in order. A conversation is a list of turns; every turn but
the last carries the model's own earlier answer, so multi-turn dialogues and multi-image prompts both fit.
"""

from __future__ import annotations

import abc
import difflib
import hashlib
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from owleval.errors import OwlEvalError

if TYPE_CHECKING:
    from PIL import Image


@dataclass(frozen=True)
class ImageRef:
    """An image on disk. Adapters load it with :meth:`load` (by content, not extension)."""

    path: Path

    def load(self) -> Image.Image:
        from owleval.questions import load_image

        return load_image(self.path)

    @cached_property
    def sha256(self) -> str:
        """Content hash: the key for caching image features across turns and runs."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Turn:
    """One user message with its images, and the model's answer when the turn is history."""

    text: str
    images: tuple[ImageRef, ...] = ()
    answer: str | None = None


@dataclass(frozen=True)
class Conversation:
    """Earlier turns (answered) followed by the turn to answer. ``key`` identifies it, e.g. ``q5``."""

    turns: tuple[Turn, ...]
    key: str = ""

    def __post_init__(self) -> None:
        if not self.turns:
            raise ValueError("a conversation needs at least one turn")
        if self.turns[-1].answer is not None:
            raise ValueError("the last turn of a conversation is the one to answer: it must have no answer")
        if any(t.answer is None for t in self.turns[:-1]):
            raise ValueError("every earlier turn of a conversation needs its answer")

    @property
    def history(self) -> tuple[Turn, ...]:
        return self.turns[:-1]

    @property
    def current(self) -> Turn:
        return self.turns[-1]

    @property
    def images(self) -> tuple[ImageRef, ...]:
        return tuple(img for t in self.turns for img in t.images)


@dataclass(frozen=True)
class GenerationConfig:
    """Decoding settings. The evaluation default is greedy and seeded, so runs can be repeated."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None
    num_beams: int = 1
    repetition_penalty: float = 1.0
    seed: int = 0
    #: how many likeliest alternatives to report for each generated token (0: none); adapters that can report
    #: them put them in :attr:`Completion.tokens`
    top_logprobs: int = 0

    def to_dict(self) -> dict[str, Any]:
        settings = asdict(self)
        if not self.top_logprobs:  # changes no answer: left out, so answer files made before it existed still resume
            del settings["top_logprobs"]
        return settings


@dataclass(frozen=True)
class LoadOptions:
    """How to load a model. ``options`` holds adapter-specific settings (``base_url``, ``vision_checkpoint``...)."""

    checkpoint: str | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 | float16
    batch_size: int | Literal["auto"] = 1  # "auto": whole waves, split by the adapter to fit memory
    options: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class TokenLogprob:
    """One generated token: its text, its log-probability and the likeliest alternatives at its position
    (token text -> log-probability, the chosen token usually among them)."""

    token: str
    logprob: float
    top: tuple[tuple[str, float], ...] = ()


class ScoredText(str):
    """An answer that also carries its tokens with their alternatives (``GenerationConfig.top_logprobs``): still a
    ``str`` to every caller of :meth:`ModelAdapter.generate`; the judge reads ``tokens``."""

    tokens: tuple[TokenLogprob, ...] | None

    def __new__(cls, text: str, tokens: tuple[TokenLogprob, ...] | None) -> ScoredText:
        scored = super().__new__(cls, text)
        scored.tokens = tokens
        return scored


@dataclass(frozen=True)
class Completion:
    """One request's outcome, for callers that need more than the answer text (the LLM judge): the reply or the
    error that ended it, its wall time (retries included), and what the server reported. Adapters that can say
    this much offer ``complete_each(requests) -> list[Completion]`` beside :meth:`ModelAdapter.generate`."""

    key: str
    text: str | None = None
    error: str | None = None
    seconds: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)
    finish_reason: str | None = None
    #: the reply's tokens with their alternatives when ``GenerationConfig.top_logprobs`` asked for them and the
    #: model gave them; None otherwise
    tokens: tuple[TokenLogprob, ...] | None = None


class AdapterError(OwlEvalError):
    """A model could not be loaded or could not answer; the message is shown to the user as is."""


class ModelAdapter(abc.ABC):
    """Base class of every model adapter.

    Subclasses set ``name`` and ``description``, implement :meth:`load` and :meth:`generate`, and may extend
    :meth:`provenance`. Register a third-party adapter under the entry-point group ``owleval.adapters``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_checkpoint: ClassVar[str | None] = None
    #: adapter-specific ``LoadOptions.options`` keys and what they mean (shown by ``owleval models``)
    option_help: ClassVar[Mapping[str, str]] = {}
    #: the value each ``option_help`` key takes when not given ("required" when it must be); ``owleval models NAME``
    option_defaults: ClassVar[Mapping[str, str]] = {}
    #: False when ``--checkpoint`` names a served model rather than files: provenance never reads it from disk
    checkpoint_is_local: ClassVar[bool] = True

    def __init__(self, options: LoadOptions):
        self.options = options

    @classmethod
    @abc.abstractmethod
    def load(cls, options: LoadOptions) -> ModelAdapter:
        """Load weights or connect; raise :class:`AdapterError` with a clear message when that fails."""

    @classmethod
    def check_options(cls, options: Mapping[str, str], also: Collection[str] = ()) -> None:
        """Refuse any ``-o`` key this adapter does not declare in :attr:`option_help` (or that is not in ``also``:
        settings of the command itself, e.g. the judge's), before anything loads.

        A typo such as ``attn_implmentation`` would otherwise be ignored silently and the run would use the default.
        """
        known = sorted({*cls.option_help, *also})
        for key in options:
            if key in known:
                continue
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            listing = ", ".join(known) if known else "none"
            raise AdapterError(f"unknown option -o {key}=... for model {cls.name!r}{hint}. Its options: {listing} "
                               f"(see `owleval models {cls.name}`)")

    @classmethod
    def open(cls, options: LoadOptions) -> ModelAdapter:
        """Check the options, then :meth:`load`: the way the runner (and anyone else) should load an adapter."""
        cls.check_options(options.options)
        return cls.load(options)

    @abc.abstractmethod
    def generate(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        """Answer each conversation's last turn. Returns one string per conversation, in order."""

    def provenance(self) -> dict[str, Any]:
        """What identifies this model run: written into the answers' ``.meta.json``."""
        return {
            "adapter": self.name,
            "checkpoint": self.options.checkpoint or self.default_checkpoint,
            "device": self.options.device,
            "dtype": self.options.dtype,
        }

    def answer_settings(self) -> dict[str, Any]:
        """Resolved settings beyond the checkpoint and decoding that change the answers (a system prompt, an image
        pixel budget, pad or crop, the prompt format), defaults included: a re-run that resolves them differently
        must not add to an existing answers file. Empty for adapters without such settings."""
        return {}

    @property
    def preferred_batch_size(self) -> int:
        """Conversations per ``generate`` call that use this adapter well; the runner takes the larger of this
        and ``--batch-size`` (a remote adapter returns its concurrency, so requests can overlap)."""
        return 1

    def default_model_id(self) -> str:
        """The ``model_id`` written into answer files when the user gives none."""
        checkpoint = self.options.checkpoint
        if not checkpoint:
            return self.name
        tail = re.sub(r"[^A-Za-z0-9._+-]+", "-", checkpoint.rstrip("/").split("/")[-1]).strip("-.")
        return f"{self.name}:{tail}" if tail else self.name

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op unless an adapter holds resources
        """Release resources (connections, GPU memory)."""


def resolve_device(device: str) -> str:
    """``auto`` picks CUDA when available, else CPU; anything else is returned checked."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise AdapterError(f"--device {device} asked for, but CUDA is not available on this machine")
    if device != "cpu" and not device.startswith("cuda"):
        raise AdapterError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N")
    return device


def resolve_dtype(dtype: str, device: str) -> Any:
    """``auto`` is bfloat16 on a GPU that supports it (else float16) and float32 on the CPU."""
    import torch

    table = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    if dtype not in table:
        raise AdapterError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
    return table[dtype]
