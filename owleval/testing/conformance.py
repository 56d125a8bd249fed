"""The conformance suite every OwlEval model adapter passes: built-in ones and third-party ones alike.

What it checks, on tiny random weights or a loopback server:
  * answers are strings, one per conversation, in order (and an empty batch gives an empty list);
  * under greedy decoding a batch gives the same answers as its conversations one by one;
  * the second turn of a dialogue sees the first turn's answer (changing that answer changes the model input);
  * images reach the model (changing the image changes the model input);
  * device and dtype options are honoured (local models: parameters on the requested device in the requested
    dtype; remote or replaying adapters: CPU works, a CUDA request is refused with an AdapterError or ignored);
  * a checkpoint (or any path option) that does not exist gives an AdapterError naming it;
  * an ``-o`` key the adapter does not declare in ``option_help`` is refused before anything loads;
  * provenance is a JSON-serialisable dict naming the adapter.

"The model input" is observed, not guessed: by default the suite hooks every ``torch.nn.Module`` it finds on the
adapter (attributes, and attributes of attributes) and records a digest of the tensors each module receives on
its first call. Adapters whose model runs elsewhere pass their own ``observe`` (the ``openai`` target reads the
loopback server's request log).

Use it for your own adapter (it ships with the package; pytest is needed):

    import pytest
    from owleval.testing.conformance import AdapterConformance, ConformanceTarget

    class TestMyAdapter(AdapterConformance):
        @pytest.fixture(scope="class")
        @classmethod
        def target(cls, tmp_path_factory):
            ckpt = make_my_tiny_checkpoint(tmp_path_factory.mktemp("ckpt"))  # your tiny random weights
            return ConformanceTarget(MyAdapter, checkpoint=str(ckpt))

The data set (questions and images) comes from ``data_dir`` or, by default, the installed OwlEval data set.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from owleval.adapters.base import (
    AdapterError,
    Conversation,
    GenerationConfig,
    ImageRef,
    LoadOptions,
    ModelAdapter,
    Turn,
)

Observation = Mapping[str, str]
Observer = Callable[[ModelAdapter, Conversation, GenerationConfig], Observation]


@dataclass
class ConformanceTarget:
    """How to load one adapter for the suite."""

    adapter_cls: type[ModelAdapter]
    checkpoint: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    #: runs a torch model in this process, so ``device``/``dtype`` must reach its parameters
    local: bool = True
    #: replays recorded answers (history and images are not its input): the input-sensitivity checks are skipped
    replays: bool = False
    #: how to see what the model was given; default: digests of the inputs of the adapter's torch modules
    observe: Observer | None = None
    #: LoadOptions naming things that do not exist; default: each existing path (checkpoint, options) made missing
    missing: Callable[[Path], list[tuple[LoadOptions, str]]] | None = None
    #: dtypes whose parameters are checked on CPU for local adapters
    dtypes: tuple[str, ...] = ("float32", "bfloat16")
    #: parameter names allowed to stay float32 whatever the dtype (e.g. norms an adapter keeps in full precision)
    keeps_float32: Callable[[str], bool] = lambda name: False
    max_new_tokens: int = 6
    data_dir: Path | None = None

    def load_options(self, **changes: Any) -> LoadOptions:
        dtype = "float32" if self.local else "auto"  # remote models choose their own dtype
        base = LoadOptions(self.checkpoint, device="cpu", dtype=dtype, batch_size=4, options=dict(self.options))
        return replace(base, **changes)

    def load(self, **changes: Any) -> ModelAdapter:
        return self.adapter_cls.open(self.load_options(**changes))

    @property
    def config(self) -> GenerationConfig:
        return GenerationConfig(max_new_tokens=self.max_new_tokens, do_sample=False, seed=0)


# -- conversations from the real data set ----------------------------------------------------------------------
@functools.cache
def _questions(root: Path) -> dict[int, Any]:
    """Read once per data set: every test builds several conversations from the same questions."""
    from owleval.questions import questions_by_id

    return questions_by_id(root)


def _data(target: ConformanceTarget) -> tuple[dict[int, Any], Path]:
    from owleval.paths import default_data_dir

    root = Path(target.data_dir or default_data_dir())
    return _questions(root), root


def single(target: ConformanceTarget, qid: int, image_of: int | None = None) -> Conversation:
    """Question ``qid`` alone, with its own image (or the image of question ``image_of``)."""
    questions, root = _data(target)
    image = ImageRef(root / "cases" / questions[image_of or qid].image)
    return Conversation((Turn(questions[qid].question, (image,)),), key=f"q{qid}")


def dialogue(target: ConformanceTarget, first: int, answer: str) -> Conversation:
    """The second turn of the dialogue opened by question ``first``, after ``answer`` to the first turn."""
    questions, root = _data(target)
    later = questions[first + 1]
    assert later.earlier_turns == (first,), f"question {first + 1} is not the second turn of dialogue {first}"
    image = ImageRef(root / "cases" / questions[first].image)
    turns = (Turn(questions[first].question, (image,), answer=answer), Turn(later.question))
    return Conversation(turns, key=f"q{later.question_id}")


def batch(target: ConformanceTarget) -> list[Conversation]:
    """Four conversations of different lengths and images (49.jpg is a PNG), one of them a second turn."""
    return [single(target, 1), dialogue(target, 4, "A dog sits on a red sofa."), single(target, 49), single(target, 33)]


# -- observing the model input ---------------------------------------------------------------------------------
def torch_modules(adapter: ModelAdapter) -> dict[str, Any]:
    """The torch modules an adapter holds: its attributes, and the attributes of those (e.g. a pipeline object)."""
    import torch

    found: dict[int, tuple[str, Any]] = {}

    def visit(name: str, value: Any, depth: int) -> None:
        if isinstance(value, torch.nn.Module):
            found.setdefault(id(value), (name, value))
        elif depth < 2 and hasattr(value, "__dict__") and not isinstance(value, type):
            for attr, inner in vars(value).items():
                visit(f"{name}.{attr}", inner, depth + 1)
        elif depth < 2 and isinstance(value, (list, tuple, dict)):
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, inner in items:
                visit(f"{name}[{key}]", inner, depth + 1)

    for attr, value in vars(adapter).items():
        visit(attr, value, 0)
    return {name: module for name, module in found.values()}


def _digest(args: tuple, kwargs: dict) -> str:
    import torch

    h = hashlib.sha256()
    for key, value in [*enumerate(args), *sorted(kwargs.items())]:
        if isinstance(value, torch.Tensor):
            t = value.detach().to("cpu")
            t = t.float() if t.is_floating_point() else t
            h.update(f"{key}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


def observe_torch_inputs(adapter: ModelAdapter, conversation: Conversation, config: GenerationConfig) -> Observation:
    """Digest of the tensors each module of the adapter receives on its first call while answering."""
    roots = torch_modules(adapter)
    assert roots, f"{type(adapter).__name__} holds no torch module: pass ConformanceTarget(observe=...)"
    seen: dict[str, str] = {}
    handles = []
    done: set[int] = set()
    for prefix, root in roots.items():
        for name, module in root.named_modules():
            if id(module) in done:
                continue
            done.add(id(module))
            key = f"{prefix}.{name}" if name else prefix

            def hook(mod: Any, args: tuple, kwargs: dict, key: str = key) -> None:
                if key not in seen:
                    seen[key] = _digest(args, kwargs)

            handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    try:
        adapter.generate([conversation], config)
    finally:
        for handle in handles:
            handle.remove()
    return seen


def differs(a: Observation, b: Observation) -> bool:
    common = a.keys() & b.keys()
    assert common, "the two observations share nothing (no module saw input both times)"
    return any(a[k] != b[k] for k in common)


# -- missing checkpoints ----------------------------------------------------------------------------------------
def missing_paths(target: ConformanceTarget, where: Path) -> list[tuple[LoadOptions, str]]:
    """One LoadOptions per existing path (checkpoint and path-valued options), with that path made missing."""
    variants: list[tuple[LoadOptions, str]] = []
    if target.checkpoint and Path(target.checkpoint).exists():
        gone = str(where / "no-such-checkpoint")
        variants.append((target.load_options(checkpoint=gone), gone))
    for key, value in target.options.items():
        if value and Path(value).exists():
            gone = str(where / f"no-such-{key}")
            variants.append((target.load_options(options={**target.options, key: gone}), gone))
    return variants


# -- the suite --------------------------------------------------------------------------------------------------
class AdapterConformance:
    """Subclass it and provide a class-scoped ``target`` fixture returning a :class:`ConformanceTarget`."""

    @pytest.fixture(scope="class")
    @classmethod
    def target(cls) -> ConformanceTarget:
        raise NotImplementedError("define a `target` fixture returning a ConformanceTarget")

    @pytest.fixture(scope="class")
    @classmethod
    def adapter(cls, target: ConformanceTarget) -> Iterator[ModelAdapter]:
        adapter = target.load()
        yield adapter
        adapter.close()

    def observe(self, target: ConformanceTarget, adapter: ModelAdapter, conversation: Conversation) -> Observation:
        if target.replays:
            pytest.skip(f"{target.adapter_cls.name} replays recorded answers: the model input is not observable")
        return (target.observe or observe_torch_inputs)(adapter, conversation, target.config)

    def test_answers_are_strings_one_per_conversation(self, target: ConformanceTarget, adapter: ModelAdapter) -> None:
        conversations = batch(target)
        answers = adapter.generate(conversations, target.config)
        assert isinstance(answers, list) and len(answers) == len(conversations)
        assert all(isinstance(a, str) for a in answers), answers
        assert adapter.generate([], target.config) == []

    def test_batch_equals_one_by_one_under_greedy(self, target: ConformanceTarget, adapter: ModelAdapter) -> None:
        conversations = batch(target)
        together = adapter.generate(conversations, target.config)
        alone = [adapter.generate([c], target.config)[0] for c in conversations]
        assert together == alone
        assert adapter.generate(conversations[::-1], target.config) == together[::-1], "answers out of order"

    def test_second_turn_sees_the_first_answer(self, target: ConformanceTarget, adapter: ModelAdapter) -> None:
        first = self.observe(target, adapter, dialogue(target, 4, "A dog sits on a red sofa."))
        again = self.observe(target, adapter, dialogue(target, 4, "A dog sits on a red sofa."))
        other = self.observe(target, adapter, dialogue(target, 4, "Two cats sleep in the sun."))
        assert not differs(first, again), "the same conversation gave a different model input"
        assert differs(first, other), "changing the first turn's answer did not change the model input"

    def test_images_reach_the_model(self, target: ConformanceTarget, adapter: ModelAdapter) -> None:
        own = self.observe(target, adapter, single(target, 1))
        again = self.observe(target, adapter, single(target, 1))
        other = self.observe(target, adapter, single(target, 1, image_of=49))
        assert not differs(own, again), "the same conversation gave a different model input"
        assert differs(own, other), "changing the image did not change the model input"

    def test_device_and_dtype_are_honoured(self, target: ConformanceTarget) -> None:
        import torch

        if not torch.cuda.is_available():
            try:
                target.load(device="cuda").close()
                assert not target.local, "a local adapter loaded on CUDA although this machine has none"
            except AdapterError as exc:
                assert "cuda" in str(exc).lower() or "device" in str(exc).lower(), str(exc)
        if not target.local:
            adapter = target.load(device="cpu", dtype="auto")
            try:
                assert len(adapter.generate([single(target, 1)], target.config)) == 1
            finally:
                adapter.close()
            return
        runs = [("cpu", dtype) for dtype in target.dtypes]
        if torch.cuda.is_available():
            runs.append(("cuda", "bfloat16"))
        for device, dtype in runs:
            adapter = target.load(device=device, dtype=dtype)
            try:
                want = getattr(torch, dtype)
                params = {
                    f"{prefix}.{name}": p
                    for prefix, module in torch_modules(adapter).items()
                    for name, p in module.named_parameters()
                }
                assert params, "the adapter holds no parameters"
                wrong = {n: (str(p.device), p.dtype) for n, p in params.items() if p.device.type != device}
                wrong |= {
                    n: (str(p.device), p.dtype)
                    for n, p in params.items()
                    if p.is_floating_point() and p.dtype != want and not target.keeps_float32(n)
                }
                assert not wrong, f"--device {device} --dtype {dtype}, but: {dict(list(wrong.items())[:5])}"
                answers = adapter.generate([single(target, 49)], target.config)
                assert len(answers) == 1 and isinstance(answers[0], str)
            finally:
                adapter.close()

    def test_missing_checkpoint_is_a_clear_error(self, target: ConformanceTarget, tmp_path: Path) -> None:
        variants = (target.missing or (lambda where: missing_paths(target, where)))(tmp_path)
        assert variants, "nothing to make missing: give the target a checkpoint path or a `missing` function"
        for options, name in variants:
            with pytest.raises(AdapterError) as caught:
                target.adapter_cls.load(options)
            assert name in str(caught.value) or Path(name).name in str(caught.value), str(caught.value)

    def test_unknown_option_is_refused_before_loading(self, target: ConformanceTarget) -> None:
        declared = sorted(target.adapter_cls.option_help)
        assert set(target.options) <= set(declared), f"the target uses undeclared options: {set(target.options) - set(declared)}"
        typo = (declared[0] + "x") if declared else "no_such_option"
        options = replace(target.load_options(), options={**target.options, typo: "1"})
        with pytest.raises(AdapterError) as caught:
            target.adapter_cls.open(options)
        message = str(caught.value)
        assert typo in message and all(name in message for name in declared), message
        if declared:
            assert f"did you mean {declared[0]!r}" in message, message

    def test_provenance_names_the_adapter(self, target: ConformanceTarget, adapter: ModelAdapter) -> None:
        adapter.generate([single(target, 1)], target.config)
        record = adapter.provenance()
        assert record.get("adapter") == target.adapter_cls.name
        json.dumps(record)
