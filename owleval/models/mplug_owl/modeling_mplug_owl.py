"""mPLUG-Owl (v1) in PyTorch, matching the upstream X-PLUG/mPLUG-Owl model and its weight layout.

Read top to bottom: shared attention helper, the ViT vision encoder, the visual abstractor, then the full model.
The language model is transformers' own causal LM (``LlamaForCausalLM`` for the released checkpoints).

Upstream details kept on purpose (each one changes the numbers):
- the vision encoder's fused ``query_key_value`` is laid out per head as ``[q_h, k_h, v_h]``;
- vision LayerNorms compute in float32 with ``layer_norm_eps`` (1e-6); post_layernorm covers every token;
- abstractor queries attend to themselves and the image tokens; the residual starts from the *normalised*
  queries; norm1/normk/norm2 use PyTorch's default eps 1e-5, only ``ffn_ln`` uses the config's eps;
- one image fills ``num_query_tokens + 1`` prompt slots (queries + ``vit_eos``), replacing a run of negative ids.
"""

from __future__ import annotations

import copy
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, CausalLMOutputWithPast
from transformers.models.auto import AutoModelForCausalLM

from .configuration_mplug_owl import MplugOwlConfig, MplugOwlVisionConfig, MplugOwlVisualAbstractorConfig
from .static_decode import StaticCacheDecoder, unsupported_by_static_decoder

__all__ = ["MplugOwlForConditionalGeneration", "MplugOwlPreTrainedModel", "media_starts", "positions_from_mask"]


def _attend(query, key, value, *, scale: float, mask, dropout: float, training: bool, implementation: str | None):
    """Scaled dot-product attention over [batch, heads, seq, head_dim]; ``eager`` spells it out, else SDPA."""
    dropout = dropout if training else 0.0
    if implementation == "eager":
        scores = torch.matmul(query, key.transpose(-1, -2)) * scale
        if mask is not None:
            scores = scores + mask
        probs = F.dropout(scores.softmax(dim=-1), p=dropout, training=training)
        return torch.matmul(probs, value)
    return F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout, scale=scale)


class LayerNormFp32(nn.LayerNorm):
    """LayerNorm computed in float32 and cast back, so bf16/fp16 runs keep the statistics exact."""

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        out = F.layer_norm(
            hidden_states.float(), self.normalized_shape, self.weight.float(), self.bias.float(), self.eps
        )
        return out.to(hidden_states.dtype)


# ----------------------------------------------------------------------------------------------------------------
# Vision encoder: ViT-L/14 with a CLS token, pre- and post-LayerNorm.
# ----------------------------------------------------------------------------------------------------------------


class MplugOwlVisionEmbeddings(nn.Module):
    def __init__(self, config: MplugOwlVisionConfig):
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.patch_embed = nn.Conv2d(3, config.hidden_size, config.patch_size, stride=config.patch_size, bias=False)
        num_patches = (config.image_size // config.patch_size) ** 2
        self.position_embedding = nn.Parameter(torch.zeros(1, num_patches + 1, config.hidden_size))
        self.pre_layernorm = LayerNormFp32(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = self.patch_embed(pixel_values).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(patches.shape[0], 1, -1).to(patches.dtype)
        embeddings = torch.cat([cls, patches], dim=1)
        embeddings = embeddings + self.position_embedding[:, : embeddings.shape[1]].to(patches.dtype)
        return self.pre_layernorm(embeddings)


class MplugOwlVisionAttention(nn.Module):
    """Bidirectional self-attention with one fused projection laid out per head as [q, k, v]."""

    def __init__(self, config: MplugOwlVisionConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        if self.head_dim * self.num_heads != config.hidden_size:
            raise ValueError(f"vision hidden_size {config.hidden_size} is not divisible by {self.num_heads} heads")
        self.query_key_value = nn.Linear(config.hidden_size, 3 * config.hidden_size)
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        batch, seq, width = hidden_states.shape
        qkv = self.query_key_value(hidden_states).reshape(batch, seq, self.num_heads, 3, self.head_dim)
        query, key, value = qkv.permute(3, 0, 2, 1, 4).unbind(0)
        context = _attend(
            query, key, value, scale=self.head_dim**-0.5, mask=None, dropout=self.config.attention_dropout,
            training=self.training, implementation=self.config._attn_implementation,
        )
        return self.dense(context.transpose(1, 2).reshape(batch, seq, width))


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class MplugOwlVisionMLP(nn.Module):
    def __init__(self, config: MplugOwlVisionConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = QuickGELU()
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(hidden_states)))


class MplugOwlVisionEncoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: MplugOwlVisionConfig):
        super().__init__()
        self.input_layernorm = LayerNormFp32(config.hidden_size, eps=config.layer_norm_eps)
        self.self_attn = MplugOwlVisionAttention(config)
        self.post_attention_layernorm = LayerNormFp32(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = MplugOwlVisionMLP(config)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = hidden_states + self.self_attn(self.input_layernorm(hidden_states))
        return hidden_states + self.mlp(self.post_attention_layernorm(hidden_states))


class MplugOwlVisionEncoder(nn.Module):
    def __init__(self, config: MplugOwlVisionConfig):
        super().__init__()
        self.layers = nn.ModuleList([MplugOwlVisionEncoderLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden_states = layer(hidden_states)
        return hidden_states


class MplugOwlVisionModel(nn.Module):
    """Pixels [N, 3, H, W] -> features [N, 1 + patches, width], post_layernorm applied to every token."""

    def __init__(self, config: MplugOwlVisionConfig):
        super().__init__()
        self.config = config
        self.embeddings = MplugOwlVisionEmbeddings(config)
        self.encoder = MplugOwlVisionEncoder(config)
        self.post_layernorm = LayerNormFp32(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True) -> BaseModelOutputWithPooling:
        hidden = self.post_layernorm(self.encoder(self.embeddings(pixel_values)))
        pooled = self.post_layernorm(hidden[:, 0, :])  # upstream normalises the CLS token a second time (unused)
        return BaseModelOutputWithPooling(last_hidden_state=hidden, pooler_output=pooled)


# ----------------------------------------------------------------------------------------------------------------
# Visual abstractor: learned queries cross-attend to [queries; image tokens], then move to the LLM width.
# ----------------------------------------------------------------------------------------------------------------


class MplugOwlVisualAbstractorMultiHeadAttention(nn.Module):
    def __init__(self, config: MplugOwlVisualAbstractorConfig):
        super().__init__()
        self.config = config
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // self.num_heads
        if self.head_dim * self.num_heads != config.hidden_size:
            raise ValueError(f"abstractor hidden_size {config.hidden_size} is not divisible by {self.num_heads} heads")
        self.query = nn.Linear(config.hidden_size, config.hidden_size)
        self.key = nn.Linear(config.encoder_hidden_size, config.hidden_size)
        self.value = nn.Linear(config.encoder_hidden_size, config.hidden_size)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        context = _attend(
            self._heads(self.query(queries)), self._heads(self.key(keys_values)), self._heads(self.value(keys_values)),
            scale=self.head_dim**-0.5, mask=mask, dropout=self.config.attention_probs_dropout_prob,
            training=self.training, implementation=self.config._attn_implementation,
        )
        return context.transpose(1, 2).reshape(queries.shape[0], queries.shape[1], -1)


class MplugOwlVisualAbstractorMLP(nn.Module):
    """SwiGLU with a LayerNorm on the intermediate activations: w2(ffn_ln(silu(w1 x) * w3 x))."""

    def __init__(self, config: MplugOwlVisualAbstractorConfig):
        super().__init__()
        self.w1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.w2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.w3 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.ffn_ln = nn.LayerNorm(config.intermediate_size, eps=config.layer_norm_eps)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.w2(self.ffn_ln(F.silu(self.w1(hidden_states)) * self.w3(hidden_states)))


class MplugOwlVisualAbstractorCrossOutput(nn.Module):
    def __init__(self, config: MplugOwlVisualAbstractorConfig):
        super().__init__()
        self.out_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.norm2 = nn.LayerNorm(config.hidden_size)
        self.mlp = MplugOwlVisualAbstractorMLP(config)

    def forward(self, context: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        hidden = residual + self.out_proj(context)
        return hidden + self.mlp(self.norm2(hidden))


class MplugOwlVisualAbstractorAttention(nn.Module):
    def __init__(self, config: MplugOwlVisualAbstractorConfig):
        super().__init__()
        self.attention = MplugOwlVisualAbstractorMultiHeadAttention(config)
        self.output = MplugOwlVisualAbstractorCrossOutput(config)
        self.norm1 = nn.LayerNorm(config.hidden_size)
        self.normk = nn.LayerNorm(config.hidden_size)

    def forward(self, queries: torch.Tensor, image_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        queries = self.norm1(queries)
        keys_values = torch.cat([queries, self.normk(image_states)], dim=1)
        return self.output(self.attention(queries, keys_values, mask), queries)  # residual from normed queries


class MplugOwlVisualAbstractorLayer(GradientCheckpointingLayer):
    def __init__(self, config: MplugOwlVisualAbstractorConfig):
        super().__init__()
        self.crossattention = MplugOwlVisualAbstractorAttention(config)

    def forward(self, queries: torch.Tensor, image_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.crossattention(queries, image_states, mask)


class MplugOwlVisualAbstractorEncoder(nn.Module):
    def __init__(self, config: MplugOwlVisualAbstractorConfig):
        super().__init__()
        self.layers = nn.ModuleList([MplugOwlVisualAbstractorLayer(config) for _ in range(config.num_hidden_layers)])

    def forward(self, queries: torch.Tensor, image_states: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        for layer in self.layers:
            queries = layer(queries, image_states, mask)
        return queries


class MplugOwlVisualAbstractorModel(nn.Module):
    """Queries [N, Q, width] + image features -> [N, Q + 1, text width] (visual_fc outputs, then ``vit_eos``)."""

    def __init__(self, config: MplugOwlVisualAbstractorConfig, language_hidden_size: int):
        super().__init__()
        self.config = config
        self.encoder = MplugOwlVisualAbstractorEncoder(config)
        self.visual_fc = nn.Linear(config.hidden_size, language_hidden_size)
        self.vit_eos = nn.Parameter(torch.zeros(1, 1, language_hidden_size))

    def forward(
        self,
        query_embeds: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> BaseModelOutputWithPooling:
        mask = None
        if attention_mask is not None or encoder_attention_mask is not None:  # 1 = attend, as upstream
            dtype = query_embeds.dtype
            q_mask = attention_mask if attention_mask is not None else query_embeds.new_ones(query_embeds.shape[:2])
            kv_mask = encoder_attention_mask
            if kv_mask is None:
                kv_mask = encoder_hidden_states.new_ones(encoder_hidden_states.shape[:2])
            mask = torch.cat(
                [(1.0 - q_mask.to(dtype)) * -10000.0, (1.0 - kv_mask.to(dtype)) * torch.finfo(dtype).min], dim=-1
            )[:, None, None, :]
        queries = self.encoder(query_embeds, encoder_hidden_states, mask)
        pooled = queries[:, 0, :]
        output = self.visual_fc(queries)
        output = torch.cat([output, self.vit_eos.expand(output.shape[0], 1, -1).to(output.dtype)], dim=1)
        return BaseModelOutputWithPooling(last_hidden_state=output, pooler_output=pooled)


# ----------------------------------------------------------------------------------------------------------------
# Image placeholders in input_ids: runs of negative ids, each replaced 1:1 by one image's abstractor output.
# ----------------------------------------------------------------------------------------------------------------


def media_starts(input_ids: torch.Tensor) -> torch.Tensor:
    """Bool [B, L]: where a run of negative ids starts (a negative id that differs from the id before it)."""
    changed = torch.ones_like(input_ids, dtype=torch.bool)
    changed[:, 1:] = input_ids[:, 1:] != input_ids[:, :-1]
    return (input_ids < 0) & changed


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """LLaMA positions as transformers 4.28 computed them in generate: cumsum(mask) - 1, padding slots at 1."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


class MplugOwlPreTrainedModel(PreTrainedModel):
    config_class = MplugOwlConfig
    base_model_prefix = "mplug_owl"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    _supports_flash_attn = True  # the LLM uses it; vision and abstractor fall back to SDPA
    _supports_attention_backend = True
    _no_split_modules: ClassVar[list[str]] = [
        "MplugOwlVisionEncoderLayer", "MplugOwlVisualAbstractorLayer", "LlamaDecoderLayer"
    ]
    # transformers 4.28 saved the rotary inv_freq buffers; they are recomputed, never loaded
    _keys_to_ignore_on_load_unexpected: ClassVar[list[str]] = [r"rotary_emb\.inv_freq"]

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, MplugOwlVisionEmbeddings):
            init.trunc_normal_(module.position_embedding, mean=0.0, std=std)
            init.trunc_normal_(module.cls_token, mean=0.0, std=std)
        elif isinstance(module, MplugOwlVisualAbstractorModel):
            init.trunc_normal_(module.vit_eos, mean=0.0, std=std)
        elif isinstance(module, MplugOwlForConditionalGeneration):
            init.zeros_(module.query_tokens)  # upstream never re-initialises the queries
        else:
            super()._init_weights(module)


class MplugOwlForConditionalGeneration(MplugOwlPreTrainedModel, GenerationMixin):
    """Vision encoder + abstractor + causal LM, with the upstream ``forward``/``generate`` arguments.

    ``generate`` returns ``[BOS, new tokens...]`` per row by default, as the upstream model did under
    transformers 4.28 (the prompt is not echoed); pass ``prepend_bos=False`` for the new tokens only.
    """

    main_input_name = "input_ids"

    def __init__(self, config: MplugOwlConfig):
        super().__init__(config)
        self.vision_model = MplugOwlVisionModel(config.vision_config)
        self.query_tokens = nn.Parameter(
            torch.zeros(1, config.num_query_tokens, config.visual_abstractor_config.hidden_size)
        )
        self.abstractor = MplugOwlVisualAbstractorModel(config.visual_abstractor_config, config.text_config.hidden_size)
        self.language_model = AutoModelForCausalLM.from_config(config.text_config)
        self.post_init()

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """Load a local directory or hub id in the upstream layout; see :func:`.loading.load_pretrained`."""
        from .loading import load_pretrained

        return load_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs)

    def get_input_embeddings(self) -> nn.Module:
        return self.language_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_input_embeddings(value)

    def get_output_embeddings(self) -> nn.Module:
        return self.language_model.get_output_embeddings()

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.language_model.set_output_embeddings(value)

    # -- images ----------------------------------------------------------------------------------------------------

    def get_image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] -> [N, num_query_tokens + 1, text width]: what one image puts into the prompt."""
        pixel_values = pixel_values.to(self.vision_model.embeddings.patch_embed.weight.dtype)
        image_states = self.vision_model(pixel_values).last_hidden_state
        queries = self.query_tokens.expand(image_states.shape[0], -1, -1)
        return self.abstractor(query_embeds=queries, encoder_hidden_states=image_states).last_hidden_state

    def _embed_with_images(
        self,
        input_ids: torch.Tensor,
        image_features: torch.Tensor | None,
        num_images: torch.Tensor | None,
        *,
        skip_last_position: bool,
        placeholder_id: int,
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | None]:
        """Embed ``input_ids`` and overwrite each placeholder run with the next image's features.

        Images are taken in batch order; with ``num_images`` sample ``b`` starts at the sum of the earlier counts
        (upstream forward), without it they are consumed one per run (upstream generate). Returns the embeddings
        and the (rows, positions) that now hold image features.
        """
        starts = media_starts(input_ids[:, :-1] if skip_last_position else input_ids)
        ids = input_ids.masked_fill(input_ids < 0, placeholder_id)
        embeds = self.get_input_embeddings()(ids)
        rows, cols = starts.nonzero(as_tuple=True)
        if rows.numel() == 0:
            return embeds, None
        if image_features is None:
            raise ValueError("input_ids hold image placeholders (negative ids) but no pixel_values were given")
        slots = image_features.shape[1]
        if num_images is not None:
            num_images = torch.as_tensor(num_images, device=rows.device).long().reshape(-1)
            offsets = num_images.cumsum(0) - num_images
            rank = torch.arange(rows.numel(), device=rows.device) - torch.searchsorted(rows, rows)
            image_index = offsets[rows] + rank
        else:
            image_index = torch.arange(rows.numel(), device=rows.device)
        if int(image_index.max()) >= image_features.shape[0]:
            raise ValueError(
                f"input_ids hold {rows.numel()} image placeholder runs but only {image_features.shape[0]} images "
                "were given"
            )
        overlapping = ((cols[1:] - cols[:-1]) < slots) & (rows[1:] == rows[:-1])
        if int(cols.max()) + slots > input_ids.shape[1] or bool(overlapping.any()):
            raise ValueError(f"every image needs {slots} placeholder slots in input_ids (num_query_tokens + 1)")
        positions = cols[:, None] + torch.arange(slots, device=cols.device)
        embeds = embeds.clone()
        embeds[rows[:, None], positions] = image_features[image_index].to(embeds.dtype)
        return embeds, (rows[:, None], positions)

    # -- training / scoring -----------------------------------------------------------------------------------------

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        num_images: torch.Tensor | None = None,
        non_padding_mask: torch.Tensor | None = None,
        non_media_mask: torch.Tensor | None = None,
        prompt_mask: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        *,
        image_features: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        position_ids: torch.Tensor | None = None,
        cache=None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast | tuple:
        """Upstream training forward: ``labels`` are masked **in place** (``labels[:, 1:][loss_mask != 1] = -100``)
        with ``loss_mask = non_padding_mask * non_media_mask * prompt_mask`` ([B, L-1] each; a mask left out
        counts as all ones, except non_media_mask which defaults to ``input_ids[:, 1:] >= 0``), then the LM's mean
        shifted cross-entropy is the loss. Also serves generation steps (``inputs_embeds`` / ``cache``)."""
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("forward needs input_ids or inputs_embeds")
            if image_features is None and pixel_values is not None:
                image_features = self.get_image_features(pixel_values)
            if image_features is None and cache is None and bool((input_ids < 0).any()):
                raise ValueError("input_ids hold image placeholders (negative ids) but no pixel_values were given")
            inputs_embeds, _ = self._embed_with_images(
                input_ids, image_features, num_images, skip_last_position=True, placeholder_id=1
            )
        if labels is not None:
            if input_ids is None:
                raise ValueError("labels need input_ids (the loss mask is built from them)")
            loss_mask = torch.ones_like(labels[:, 1:])
            for mask in (non_padding_mask, prompt_mask):
                if mask is not None:
                    loss_mask = loss_mask * mask.long()
            media = non_media_mask.long() if non_media_mask is not None else (input_ids[:, 1:] >= 0).long()
            loss_mask = loss_mask * media
            labels[:, 1:][loss_mask != 1] = -100
        if attention_mask is not None and attention_mask.dim() == 2 and attention_mask.is_floating_point():
            attention_mask = attention_mask.long()
        outputs = self.language_model(
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=cache,
            labels=labels,
            use_cache=use_cache,
            logits_to_keep=logits_to_keep,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            **kwargs,
        )
        return outputs if return_dict is not False else outputs.to_tuple()

    # -- generation -------------------------------------------------------------------------------------------------

    @torch.no_grad()
    def generate(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        num_images: torch.Tensor | None = None,
        *,
        image_features: torch.Tensor | None = None,
        prepend_bos: bool = True,
        static_decoder: StaticCacheDecoder | None = None,
        **generate_kwargs,
    ):
        """Upstream generate: splice the images into the prompt embeddings and decode with the LM's settings.

        Works with left padding (batched results equal one-by-one results) and, like upstream, with right
        padding (new tokens then follow the pad slots). ``image_features`` (from :meth:`get_image_features`)
        replaces ``pixel_values`` when the features are cached. ``max_length`` keeps its transformers 4.28
        meaning (the returned BOS column counts), so upstream calls produce the same number of tokens.
        ``static_decoder`` decodes greedily on a static KV cache with a compiled step (same tokens; see
        :mod:`.static_decode`); settings it cannot follow (sampling, beams, scores...) raise ``ValueError``.
        """
        if input_ids is None:
            raise ValueError("generate needs input_ids (the tokenised prompt with image placeholders)")
        if image_features is None and pixel_values is not None:
            image_features = self.get_image_features(pixel_values)
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        attention_mask = attention_mask.long().clone()
        inputs_embeds, image_slots = self._embed_with_images(
            input_ids, image_features, num_images, skip_last_position=False, placeholder_id=0
        )
        if image_slots is not None:
            attention_mask[image_slots] = 1
        # Upstream decodes with the language model's settings (greedy unless asked), not with the outer
        # generation_config.json (do_sample=True, top_k=3) that its checkpoints carry.
        gen_config = generate_kwargs.pop("generation_config", None) or self.language_model.generation_config
        gen_config = copy.deepcopy(gen_config)
        gen_config.update(**gen_config._get_default_generation_params(), defaults_only=True)
        if "max_new_tokens" not in generate_kwargs:
            max_length = generate_kwargs.pop("max_length", None) or gen_config.max_length
            generate_kwargs["max_new_tokens"] = max(max_length - 1, 1)
        generate_kwargs.pop("max_length", None)
        gen_config.max_length = None  # max_new_tokens decides
        model_kwargs = gen_config.update(**generate_kwargs)
        if static_decoder is not None:
            problem = unsupported_by_static_decoder(gen_config, model_kwargs)
            if problem:
                raise ValueError(f"the static-cache decoder cannot follow these settings: {problem}")
            eos = gen_config.eos_token_id
            eos = eos[0] if isinstance(eos, (list, tuple)) else eos
            pad = gen_config.pad_token_id if gen_config.pad_token_id is not None else (eos if eos is not None else 0)
            output = static_decoder.generate(
                inputs_embeds, attention_mask, positions_from_mask(attention_mask),
                max_new_tokens=gen_config.max_new_tokens, eos_token_id=eos, pad_token_id=pad,
            )
        else:
            output = super().generate(
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                position_ids=positions_from_mask(attention_mask),
                generation_config=gen_config,
                **model_kwargs,
            )
        if not prepend_bos:
            return output
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        bos = gen_config.bos_token_id if gen_config.bos_token_id is not None else self.config.text_config.bos_token_id
        sequences = torch.cat([sequences.new_full((sequences.shape[0], 1), bos), sequences], dim=1)
        if isinstance(output, torch.Tensor):
            return sequences
        output.sequences = sequences
        return output

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        """Positions of new tokens follow the attention mask (as in transformers 4.28), so a right-padded row
        continues from its last real token rather than from its last pad."""
        model_kwargs = super()._update_model_kwargs_for_generation(
            outputs, model_kwargs, is_encoder_decoder=is_encoder_decoder, num_new_tokens=num_new_tokens
        )
        if model_kwargs.get("attention_mask") is not None and model_kwargs.get("position_ids") is not None:
            model_kwargs["position_ids"] = positions_from_mask(model_kwargs["attention_mask"])
        return model_kwargs
