"""MiniGPT-4 (v0, Vicuna) composed from transformers parts: BLIP-2 vision + Q-Former, a linear projection, Vicuna.

transformers has no MiniGPT-4 class. The released model is BLIP-2's EVA ViT-g with its layernorm
(``Blip2VisionModel``), BLIP-2's Q-Former with 32 query tokens (``Blip2QFormerModel``), one trained linear layer
``llama_proj`` (Q-Former width -> LLM width; the MiniGPT-4 ``.pth`` holds only it, under ``model``) and a Vicuna
``LlamaForCausalLM``. Three paths, three sources: see :attr:`MiniGPT4Adapter.option_help`.

The prompt is the one the released demo built (Vicuna v0 conversation, ``###`` separators); the 32 projected query
embeddings take the place of ``<ImageHere>``. The demo sampled with :data:`DEMO_GENERATION`; OwlEval runs pass
their own :class:`GenerationConfig` (greedy by default), so pass these values to reproduce the demo.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from owleval.adapters.base import (
    AdapterError,
    Conversation,
    GenerationConfig,
    LoadOptions,
    resolve_device,
    resolve_dtype,
)
from owleval.adapters.decode import DECODE_DEFAULT, DECODE_HELP, DecodeLog, decode_mode, hf_generate
from owleval.adapters.hf_common import (
    LocalModelAdapter,
    check_model_type,
    checkpoint_source,
    generation_kwargs,
    first_few,
    load_errors,
    load_pretrained,
    runtime_provenance,
    split_scored,
    with_tokens,
)
from owleval.adapters.options import number_option
from owleval.adapters.untrusted import SCHEME, marker_strings, neutralise_conversation

if TYPE_CHECKING:
    import torch
    from PIL import Image

SYSTEM = (
    "Give the following image: <Img>ImageContent</Img>. You will be able to see the image once I provide it to you. "
    "Please answer my questions."
)
SEP = "###"
IMAGE_PLACEHOLDER = "<ImageHere>"
IMAGE_MESSAGE = f"<Img>{IMAGE_PLACEHOLDER}</Img>"
#: the demo's decoding (it sampled; top_k 50 was the transformers default it did not override); max_length 2000
DEMO_GENERATION = GenerationConfig(
    max_new_tokens=300, do_sample=True, temperature=1.0, top_p=0.9, top_k=50, num_beams=1, repetition_penalty=1.0
)
DEMO_MAX_LENGTH = 2000
#: BLIP-2's image preprocessing (Blip2ImageEvalProcessor): bicubic resize to a square, CLIP mean/std (transformers'
#: OPENAI_CLIP_MEAN/STD, written out so that importing the adapter does not import transformers)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DEFAULT_VISION_CHECKPOINT = "Salesforce/blip2-flan-t5-xxl"
BLIP2_PARTS = ("vision_model.", "qformer.", "query_tokens")
#: Q-Former weights of its text path (absent from the BLIP-2 LLM checkpoints, present in some others): never used
QFORMER_TEXT_ONLY = r"^encoder\.layer\.\d+\.(intermediate|output)\.|^embeddings\.|position_ids$"


def build_minigpt4_prompt(conversation: Conversation) -> str:
    """The demo's prompt: system, then ``###Human: ...###Assistant: ...`` per turn, ending with ``###Assistant:``.

    As in the demo, an image arrives as its own ``<Img><ImageHere></Img>`` message and the question is appended to
    the last such message with a space; answered turns carry their answer.
    """
    prompt = SYSTEM + SEP
    for turn in conversation.turns:
        human = [IMAGE_MESSAGE] * len(turn.images)
        if human:
            human[-1] = f"{human[-1]} {turn.text}"
        else:
            human = [turn.text]
        prompt += "".join(f"Human: {message}{SEP}" for message in human)
        prompt += "Assistant:" if turn.answer is None else f"Assistant: {turn.answer}{SEP}"
    return prompt


def clean_answer(text: str) -> str:
    """What the demo kept of a generation: the text before the first ``###``, after any ``Assistant:``, stripped."""
    return text.split(SEP)[0].split("Assistant:")[-1].strip()


def preprocess_image(image: Image.Image, size: int) -> torch.Tensor:
    """RGB -> ``size`` x ``size`` bicubic -> [0, 1] -> CLIP-normalised, channels first (float32)."""
    import numpy as np
    import torch
    from PIL import Image

    array = np.asarray(image.convert("RGB").resize((size, size), Image.BICUBIC), dtype=np.float32) / 255.0
    array = (array - np.array(CLIP_MEAN, dtype=np.float32)) / np.array(CLIP_STD, dtype=np.float32)
    return torch.from_numpy(array.transpose(2, 0, 1).copy())


def _locate(source: str, filename: str) -> Path | None:
    """``filename`` inside a local directory or a hub repository (downloaded and cached); None when absent."""
    local = Path(source).expanduser()
    if local.is_dir():
        return local / filename if (local / filename).is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(source, filename))
    except EntryNotFoundError:
        return None
    except Exception as exc:  # offline, unknown repo, no access: all end the load the same way
        raise AdapterError(f"cannot fetch {filename} of vision checkpoint {source!r}: {exc}") from exc


def read_blip2_parts(source: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """The BLIP-2 config and only the vision, Q-Former and query-token tensors (never the language model's).

    With a sharded checkpoint, the index says which shards hold those tensors; only those shards are opened.
    """
    import json

    import torch
    from safetensors import safe_open
    from transformers import Blip2Config

    config_path = _locate(source, "config.json")
    if config_path is None:
        where = "" if Path(source).expanduser().is_dir() else " (hub: no such repository, or offline and not cached)"
        raise AdapterError(f"vision checkpoint {source!r} has no config.json{where}")
    try:
        model_type = json.loads(config_path.read_text(encoding="utf-8")).get("model_type")
        config = Blip2Config.from_pretrained(config_path.parent) if model_type == "blip-2" else None
    except load_errors() as exc:
        raise AdapterError(f"vision checkpoint {source!r}: unreadable config.json: {exc}") from exc
    if config is None:
        raise AdapterError(f"vision checkpoint {source!r} is a {model_type!r} model, expected a BLIP-2 ('blip-2') one")
    wanted = lambda key: key.startswith(BLIP2_PARTS)  # noqa: E731
    tensors: dict[str, torch.Tensor] = {}
    for index_name, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = _locate(source, index_name)
        if index is not None:
            weight_map: dict[str, str] = json.loads(index.read_text()).get("weight_map", {})
            shards = sorted({shard for key, shard in weight_map.items() if wanted(key)})
        elif _locate(source, single) is not None:
            shards = [single]
        else:
            continue
        for shard in shards:
            path = _locate(source, shard)
            if path is None:
                raise AdapterError(f"vision checkpoint {source!r}: shard {shard} named in {index_name} is missing")
            if path.suffix == ".safetensors":
                with safe_open(str(path), framework="pt") as handle:
                    tensors.update({k: handle.get_tensor(k) for k in handle.keys() if wanted(k)})
            else:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                tensors.update({k: v for k, v in state.items() if wanted(k)})
        return config, tensors
    raise AdapterError(f"vision checkpoint {source!r} has no model.safetensors or pytorch_model.bin (nor an index)")


def _assign(module: torch.nn.Module, state: Mapping[str, torch.Tensor], what: str, ignorable: str = "$^") -> None:
    """Load ``state`` into a meta-device ``module``, refusing missing, unexpected or mis-shaped tensors.

    Unexpected keys matching the regular expression ``ignorable`` (parts the query path never uses) are dropped.
    """
    import re

    expected = module.state_dict()
    state = {k: v for k, v in state.items() if k in expected or not re.search(ignorable, k)}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [
        f"{k}: expected {tuple(expected[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(expected) & set(state))
        if expected[k].shape != state[k].shape
    ]
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", shapes)):
        if items:
            raise AdapterError(f"{what}: {len(items)} {label} tensor(s): {first_few(items)}")
    module.load_state_dict(state, strict=True, assign=True)


def read_projection(path: str, in_features: int, out_features: int) -> dict[str, torch.Tensor]:
    """``llama_proj.weight`` [LLM width, Q-Former width] and ``llama_proj.bias`` from the MiniGPT-4 ``.pth``."""
    import pickle

    import torch

    file = Path(path).expanduser()
    if not file.is_file():
        raise AdapterError(f"projection checkpoint {path!r} not found (the MiniGPT-4 .pth: pretrained_minigpt4.pth)")
    try:
        checkpoint = torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise AdapterError(f"projection checkpoint {path}: not a loadable torch file: {exc}") from exc
    state = checkpoint.get("model") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise AdapterError(f"projection checkpoint {path}: expected a dict with the weights under 'model'")
    shapes = {"llama_proj.weight": (out_features, in_features), "llama_proj.bias": (out_features,)}
    result = {}
    for key, shape in shapes.items():
        if key not in state:
            raise AdapterError(f"projection checkpoint {path}: 'model' has no {key!r} (keys: {sorted(state)[:5]})")
        if tuple(state[key].shape) != shape:
            raise AdapterError(
                f"projection checkpoint {path}: {key} has shape {tuple(state[key].shape)}, expected {shape} "
                f"(Q-Former width {in_features} -> LLM width {out_features}: does it match this Vicuna size?)"
            )
        result[key.removeprefix("llama_proj.")] = state[key]
    return result


class MiniGPT4Adapter(LocalModelAdapter):
    name: ClassVar[str] = "minigpt4"
    description: ClassVar[str] = "MiniGPT-4 v0 (Vicuna): BLIP-2 ViT-g + Q-Former, MiniGPT-4 llama_proj, Vicuna LLM"
    default_checkpoint: ClassVar[str | None] = None
    option_help: ClassVar[Mapping[str, str]] = {
        "llm_checkpoint": "the Vicuna v0 directory (the same as --checkpoint; one of the two is required)",
        "vision_checkpoint": "BLIP-2 in the transformers layout, directory or hub id (default "
        f"{DEFAULT_VISION_CHECKPOINT}); only its vision_model.*, qformer.* and query_tokens are read",
        "projection_checkpoint": "the MiniGPT-4 .pth holding llama_proj under 'model', e.g. "
        "pretrained_minigpt4.pth (required)",
        "attn_implementation": "attention kernel of the LLM and the vision encoder: sdpa (default), eager, ...",
        "max_length": f"prompt + new tokens kept; longer prompts lose their start, as in the demo ({DEMO_MAX_LENGTH})",
        "decode": DECODE_HELP,
    }
    option_defaults: ClassVar[Mapping[str, str]] = {
        "llm_checkpoint": "--checkpoint",
        "vision_checkpoint": DEFAULT_VISION_CHECKPOINT,
        "projection_checkpoint": "required",
        "attn_implementation": "sdpa",
        "max_length": str(DEMO_MAX_LENGTH),
        "decode": DECODE_DEFAULT,
    }

    def __init__(self, options: LoadOptions, parts: Any, query_tokens: Any, tokenizer: Any, **facts: Any):
        super().__init__(options)
        self.parts = parts  # ModuleDict: vision_model, qformer, llama_proj, language_model
        self.query_tokens = query_tokens
        self.tokenizer = tokenizer
        self.facts = facts  # device, dtype, sources, image_size, max_length: what provenance reports
        self.device, self.dtype = facts.get("device", "cpu"), facts.get("dtype")
        self.decode_log = DecodeLog(options.options, self.device)

    @classmethod
    def load(cls, options: LoadOptions) -> MiniGPT4Adapter:
        opts = options.options
        llm_option = opts.get("llm_checkpoint")
        if options.checkpoint and llm_option and options.checkpoint != llm_option:
            raise AdapterError(f"--checkpoint {options.checkpoint!r} and llm_checkpoint={llm_option!r} disagree")
        if not (options.checkpoint or llm_option):
            raise AdapterError("minigpt4 needs the Vicuna weights: --checkpoint DIR (or -o llm_checkpoint=DIR)")
        llm_source = checkpoint_source(options.checkpoint or llm_option or "", "Vicuna checkpoint")
        vision_option = opts.get("vision_checkpoint", DEFAULT_VISION_CHECKPOINT)
        vision_source = checkpoint_source(vision_option, "vision checkpoint")
        projection = opts.get("projection_checkpoint")
        if not projection:
            raise AdapterError("minigpt4 needs -o projection_checkpoint=PATH (the MiniGPT-4 .pth holding llama_proj)")
        max_length = number_option(opts, "max_length", DEMO_MAX_LENGTH, minimum=2)
        device = resolve_device(options.device)
        dtype = resolve_dtype(options.dtype, device)
        decode_mode(opts, device)  # a bad value fails before the weights load
        attn = opts.get("attn_implementation")

        import torch
        from transformers import AutoTokenizer, Blip2QFormerModel, Blip2VisionModel, LlamaForCausalLM

        llm_config = check_model_type(llm_source, "Vicuna checkpoint", ("llama",))
        config, tensors = read_blip2_parts(vision_source)
        qformer_width = config.qformer_config.hidden_size
        proj_state = read_projection(projection, qformer_width, llm_config.hidden_size)
        if attn:
            config.vision_config._attn_implementation = attn
        with torch.device("meta"):
            vision, qformer = Blip2VisionModel(config.vision_config), Blip2QFormerModel(config.qformer_config)
        for module, prefix, ignorable in ((vision, "vision_model.", "$^"), (qformer, "qformer.", QFORMER_TEXT_ONLY)):
            part = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            _assign(module, part, f"vision checkpoint {vision_source} ({prefix}*)", ignorable)
        query_tokens = tensors.get("query_tokens")
        expected = (1, config.num_query_tokens, qformer_width)
        if query_tokens is None or tuple(query_tokens.shape) != expected:
            got = "missing" if query_tokens is None else f"shape {tuple(query_tokens.shape)}"
            raise AdapterError(f"vision checkpoint {vision_source}: query_tokens {got}, expected shape {expected}")
        try:
            tokenizer = AutoTokenizer.from_pretrained(llm_source)
        except load_errors() as exc:
            raise AdapterError(f"cannot load the tokenizer of Vicuna checkpoint {llm_source!r}: {exc}") from exc
        llm = load_pretrained(
            LlamaForCausalLM, llm_source, "Vicuna checkpoint", dtype=dtype, attn_implementation=attn, device_map=device
        )
        proj = torch.nn.Linear(qformer_width, llm.config.hidden_size)
        proj.load_state_dict(proj_state)
        # the Q-Former and its queries stay float32, as transformers keeps them in BLIP-2
        parts = torch.nn.ModuleDict(
            {"vision_model": vision.to(dtype), "qformer": qformer.float(), "llama_proj": proj.to(dtype),
             "language_model": llm}
        ).to(device).eval()
        facts = {
            "device": device, "dtype": dtype, "llm": llm_source, "vision": vision_source, "projection": projection,
            "image_size": config.vision_config.image_size, "max_length": max_length,
        }
        return cls(options, parts, query_tokens.float().to(device), tokenizer, **facts)

    def encode_images(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Images -> one row of projected query embeddings per image: [N, num_query_tokens, LLM width]."""
        import torch

        vision, qformer, proj = self.parts["vision_model"], self.parts["qformer"], self.parts["llama_proj"]
        features = vision(pixel_values=pixel_values.to(self.facts["dtype"])).last_hidden_state
        queries = self.query_tokens.expand(features.shape[0], -1, -1)
        mask = torch.ones(features.shape[:-1], dtype=torch.long, device=features.device)
        out = qformer(query_embeds=queries, encoder_hidden_states=features, encoder_attention_mask=mask)
        return proj(out.last_hidden_state.to(proj.weight.dtype))

    def embed_prompt(self, prompt: str, image_embeds: Sequence[torch.Tensor]) -> torch.Tensor:
        """Text around each ``<ImageHere>`` embedded on its own (BOS only before the first piece), images between."""
        import torch

        segments = prompt.split(IMAGE_PLACEHOLDER)
        if len(segments) != len(image_embeds) + 1:
            raise AdapterError(f"prompt has {len(segments) - 1} {IMAGE_PLACEHOLDER} for {len(image_embeds)} images")
        embed = self.parts["language_model"].get_input_embeddings()
        bos = self.tokenizer.bos_token_id
        pieces = []
        for i, segment in enumerate(segments):
            ids = self.tokenizer(segment, add_special_tokens=False).input_ids
            if i == 0 and bos is not None:
                ids = [bos, *ids]
            pieces.append(embed(torch.tensor(ids, dtype=torch.long, device=self.facts["device"])))
            if i < len(image_embeds):
                pieces.append(image_embeds[i])
        return torch.cat(pieces)

    def neutralised(self, conversation: Conversation) -> Conversation:
        """Questions and answers with the tokenizer's special tokens, the image placeholder and the demo's ``###``
        separator broken (:mod:`owleval.adapters.untrusted`): an answer cannot add an image or a turn."""
        if not hasattr(self, "_markers"):
            self._markers = marker_strings(self.tokenizer, None, (IMAGE_PLACEHOLDER, "<Img>", "</Img>", SEP))
        return neutralise_conversation(conversation, self._markers)

    def answer_settings(self) -> dict[str, Any]:
        return {"untrusted_text": SCHEME}

    def _generate_batch(self, conversations: Sequence[Conversation], config: GenerationConfig) -> list[str]:
        import torch

        images = [preprocess_image(ref.load(), self.facts["image_size"]) for c in conversations for ref in c.images]
        keep = max(1, self.facts["max_length"] - config.max_new_tokens)  # the demo cut the prompt's start
        with torch.inference_mode():
            image_embeds = self.encode_images(torch.stack(images).to(self.facts["device"])) if images else None
            rows, used = [], 0
            for conversation in conversations:
                count = len(conversation.images)
                own = list(image_embeds[used : used + count]) if count else []
                rows.append(self.embed_prompt(build_minigpt4_prompt(self.neutralised(conversation)), own)[-keep:])
                used += count
            width = max(len(row) for row in rows)
            embeds = rows[0].new_zeros((len(rows), width, rows[0].shape[-1]))
            mask = torch.zeros((len(rows), width), dtype=torch.long, device=self.facts["device"])
            for i, row in enumerate(rows):  # left padding: every prompt ends where generation starts
                embeds[i, width - len(row) :] = row
                mask[i, width - len(row) :] = 1
            pad = self.tokenizer.pad_token_id
            output = hf_generate(
                self.parts["language_model"],
                self.decode_log,
                inputs_embeds=embeds,
                attention_mask=mask,
                **generation_kwargs(config),
                stop_strings=[SEP],
                tokenizer=self.tokenizer,
                pad_token_id=pad if pad is not None else self.tokenizer.eos_token_id,
            )
        # without input_ids, generate() returns only the new tokens
        output, scored = split_scored(output, self.tokenizer, config.top_logprobs)
        return with_tokens([clean_answer(t) for t in self.tokenizer.batch_decode(output, skip_special_tokens=True)], scored)

    def language_config(self) -> Any:
        return self.parts["language_model"].config

    def provenance(self) -> dict[str, Any]:
        from owleval.manifest import sha256_of

        projection = Path(self.facts["projection"]).expanduser()
        llm_config = self.parts["language_model"].config
        return {
            **super().provenance(),
            **runtime_provenance(self.facts["device"], self.facts["dtype"], llm_config),
            "checkpoint": self.facts["llm"],
            "vision_checkpoint": self.facts["vision"],
            "projection_checkpoint": str(projection),
            "projection_sha256": sha256_of(projection),
            "num_query_tokens": int(self.query_tokens.shape[1]),
            "prompt_format": "minigpt4-v0 (Vicuna v0, ###)",
            "max_length": self.facts["max_length"],
            **self.decode_log.provenance(),
        }

    def close(self) -> None:
        self.parts = None
