"""Neuroformer (Antoniades et al. 2024): a generative pretrained transformer over spike events.

Each spike is a pair of tokens: its neuron id and its time offset (dt) from the start of its
chunk, in 10 ms steps (:class:`~spikefm.tokenize.events.EventTokenizer`). A window is a *past*
chunk (50 ms) the model conditions on and a *current* chunk (50 ms) it predicts, framed by SOS /
EOS. The model:

1. embeds tokens as id embedding + learned dt embedding + learned position embedding;
2. runs causal self-attention over the current chunk (``state_layers``);
3. cross-attends from the current chunk to the past chunk (``history_layers``);
4. cross-attends to another modality (video in the paper; behaviour here, ``behavior_layers``);
5. runs causal self-attention again (``state_layers``) and predicts the next id and the next dt
   with two linear heads (cross-entropy on each, PAD ignored).

A CLIP-style contrastive loss (InfoNCE, temperature 0.5) aligns the pooled neural features with
the mean behaviour features, and a behaviour head decodes behaviour from the pooled neural features
(sum over the current chunk / ``block_size``, as the code's mean over its padded block). The
neural features used by both are those *before* the behaviour cross-attention, so decoding
never sees the behaviour it predicts (the official code pools the last layer, after it).
Loss weights as the official code: ``(1 - 1/n) (3/5 CE_id + 2/5 CE_dt) + (1/n) InfoNCE`` with
``n = 4`` when contrastive, plus the behaviour MSE.

Generation (sampling spike trains autoregressively, chunk by chunk) and behaviour decoding over
whole trials live in :mod:`spikefm.eval.generation`; they call :meth:`Neuroformer.encode`.

One session per model: the id vocabulary is that session's units (+ SOS, EOS, PAD), as in the
paper. Source: a-antoniades/Neuroformer @36ed940 ``neuroformer/model_neuroformer.py``
(Neuroformer, MultimodalTransformer, FeatureEncoder, CLIP), ``configs/V1AL/mconf.yaml``,
``configs/Visnav/lateral/mconf_predict_all.yaml``; ``utils.py`` (``generate_spikes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.attention import Attention, causal_mask
from spikefm.nn.transformer import CrossAttentionBlock, TransformerBlock, make_ffn
from spikefm.objectives.losses import info_nce, mse
from spikefm.tokenize.base import Batch, TokenType
from spikefm.tokenize.events import EventConfig, EventTokenizer

__all__ = ["NeuroformerConfig", "Neuroformer", "EventInputs", "neuroformer_objective", "PRESETS"]

ID_WEIGHT, DT_WEIGHT, CONTRASTIVE_N = 3 / 5, 2 / 5, 4  # model_neuroformer.py: loss['id'], loss['time'], n
EMBEDDING_INIT_STD = 0.02  # model_neuroformer.py: Neuroformer._init_weights, normal(0, 0.02) for nn.Embedding


@dataclass
class NeuroformerConfig:
    """Neuroformer architecture and tokenization.

    Attributes:
        dim: token width (``n_embd``).
        heads: attention heads (``n_head``).
        state_layers: causal self-attention blocks over the current chunk, applied before and
            after the cross-attentions (``layers.state``).
        history_layers: current <- past cross-attention blocks (``layers.state_history``).
        behavior_layers: current <- behaviour cross-attention blocks (``layers.stimulus``); 0
            (or ``condition_on_behavior=False``) generates from spikes alone.
        dropout: embedding / residual dropout (``dropout.*``).
        resolution: dt step in seconds (``resolution.dt``).
        current_window, past_window: chunk lengths in seconds (``window.curr`` / ``window.prev``).
        block_size: most current tokens incl. SOS and EOS (``block_size.id``).
        prev_block_size: most past tokens (``block_size.prev_id``).
        contrastive: add the InfoNCE alignment of neural and behaviour features.
        clip_dim: width of the shared contrastive projection (``contrastive.clip_embd``).
        temperature: InfoNCE temperature (``contrastive.clip_temp``).
        behavior_weight: weight of the behaviour-decoding MSE.
        condition_on_behavior: feed behaviour to the generative path (like the paper's video).
        behavior_key: behaviour series used.
    """

    dim: int = 256
    heads: int = 8
    state_layers: int = 6
    history_layers: int = 6
    behavior_layers: int = 6
    dropout: float = 0.2
    resolution: float = 0.01
    current_window: float = 0.05
    past_window: float = 0.05
    block_size: int = 100
    prev_block_size: int = 700
    contrastive: bool = True
    clip_dim: int = 512
    temperature: float = 0.5
    behavior_weight: float = 1.0
    condition_on_behavior: bool = True
    behavior_key: str = "hand_vel"

    def __post_init__(self) -> None:
        if min(self.dim, self.heads, self.state_layers, self.clip_dim) < 1 or self.dim % self.heads:
            raise ValueError("NeuroformerConfig: dim, heads, state_layers, clip_dim >= 1 and dim divisible by heads")
        if min(self.history_layers, self.behavior_layers) < 0:
            raise ValueError("NeuroformerConfig: history_layers and behavior_layers must be >= 0")
        if self.block_size < 3 or self.prev_block_size < 1:
            raise ValueError("NeuroformerConfig: block_size must be >= 3 (SOS, a spike, EOS), prev_block_size >= 1")
        if not (0 < self.resolution <= self.current_window and self.past_window >= 0):
            raise ValueError("NeuroformerConfig: need 0 < resolution <= current_window and past_window >= 0")

    def event_config(self, **overrides: Any) -> EventConfig:
        """The tokenizer config this model reads."""
        return EventConfig(**{
            "resolution": self.resolution, "current_window": self.current_window, "past_window": self.past_window,
            "max_current_tokens": self.block_size - 2, "max_past_tokens": self.prev_block_size, "query": "behavior",
            "behavior_keys": (self.behavior_key,), **overrides,
        })

    @property
    def behavior_positions(self) -> int:
        """Behaviour time slots (``resolution`` steps) over past + current chunks."""
        return int(round((self.past_window + self.current_window) / self.resolution)) + 1


PRESETS: dict[str, dict[str, Any]] = {
    # configs/V1AL/mconf.yaml: n_embd 256, n_head 8, layers state / state_history / stimulus 6,
    # dropout 0.2, resolution.dt 0.01, block_size.id 100; Visnav lateral mconf_predict_all.yaml:
    # window curr 0.05 / prev 0.05, block_size.prev_id 700, clip_embd 512, clip_temp 0.5.
    "neuroformer": {},
    # CPU-sized for tests and recipes.
    "tiny": {"dim": 64, "heads": 4, "state_layers": 1, "history_layers": 1, "behavior_layers": 1, "dropout": 0.1,
             "block_size": 64, "prev_block_size": 64, "clip_dim": 64},
}


@dataclass
class EventInputs:
    """The model's inputs as tensors (built from a batch, or by the generator).

    Attributes:
        past_ids, past_dt, past_mask: [B, P] past-chunk id / dt tokens and validity.
        cur_ids, cur_dt, cur_mask: [B, C] current chunk starting with SOS (and, in training,
            ending with EOS), right-padded.
        behavior: [B, Q, Db] behaviour samples or None; behavior_pos: [B, Q] their time slots
            from the past chunk's start; behavior_mask: [B, Q] which samples are real.
    """

    past_ids: Tensor
    past_dt: Tensor
    past_mask: Tensor
    cur_ids: Tensor
    cur_dt: Tensor
    cur_mask: Tensor
    behavior: Tensor | None = None
    behavior_pos: Tensor | None = None
    behavior_mask: Tensor | None = None


class Neuroformer(nn.Module):
    """Neuroformer for one session.

    Args:
        config: architecture.
        n_units: units of the session (the id vocabulary is ``n_units + 3``).
        behavior_dim: width of the behaviour series.

    Shapes:
        forward(batch of event tokens, padded [B, L]) -> ``id_logits`` [B, C-1, n_units + 3],
        ``dt_logits`` [B, C-1, n_dt], their targets and ``target_mask`` [B, C-1], and, with
        behaviour queries, ``behavior`` [B, Q, behavior_dim] + ``behavior_valid`` [B, Q].
    """

    def __init__(self, config: NeuroformerConfig, *, n_units: int, behavior_dim: int) -> None:
        super().__init__()
        self.config, self.n_units, self.behavior_dim = config, n_units, behavior_dim
        self.events = config.event_config()
        self.specials = EventTokenizer.id_special_tokens(n_units)  # sos, eos, pad ids
        dim = config.dim
        self.id_embedding = nn.Embedding(n_units + 3, dim)
        self.dt_embedding = nn.Embedding(self.events.dt_vocab_size, dim)
        self.position = nn.Parameter(torch.zeros(config.block_size, dim))
        self.past_position = nn.Parameter(torch.zeros(config.prev_block_size, dim))
        self.embed_dropout = nn.Dropout(config.dropout)
        self.behavior_embedding = nn.Sequential(  # ProjectNorm-style MLP on each behaviour sample
            nn.Linear(behavior_dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)
        )
        self.behavior_time = nn.Embedding(config.behavior_positions, dim)
        self.encoder = self._self_blocks(config.state_layers)
        self.history = self._cross_blocks(config.history_layers)
        self.stimulus = self._cross_blocks(config.behavior_layers if config.condition_on_behavior else 0)
        self.decoder = self._self_blocks(config.state_layers)
        self.norm = nn.LayerNorm(dim)
        self.head_id = nn.Linear(dim, n_units + 3, bias=False)
        self.head_dt = nn.Linear(dim, self.events.dt_vocab_size, bias=False)
        self.clip = nn.Linear(dim, config.clip_dim, bias=False)  # shared by both modalities, as CLIP in the code
        self.behavior_head = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, behavior_dim)
        )
        # Every embedding at GPT scale, N(0, 0.02^2), as the official ``_init_weights``: at
        # nn.Embedding's N(0, 1) the id / dt rows hid the positions 50:1, and the behaviour time
        # slot hid the pooled neural features in ``decode_behavior`` (both go through LayerNorm).
        for table in (self.id_embedding.weight, self.dt_embedding.weight, self.behavior_time.weight,
                      self.position, self.past_position):
            nn.init.normal_(table, std=EMBEDDING_INIT_STD)

    def _ffn(self) -> nn.Module:
        return make_ffn("gelu", dim=self.config.dim, hidden_dim=4 * self.config.dim, dropout=self.config.dropout)

    def _self_blocks(self, n: int) -> nn.ModuleList:
        return nn.ModuleList(
            TransformerBlock(attention=Attention(dim=self.config.dim, heads=self.config.heads), ffn=self._ffn(),
                             dropout=self.config.dropout) for _ in range(n)
        )

    def _cross_blocks(self, n: int) -> nn.ModuleList:
        return nn.ModuleList(
            CrossAttentionBlock(attention=Attention(dim=self.config.dim, heads=self.config.heads), ffn=self._ffn(),
                                dropout=self.config.dropout) for _ in range(n)
        )

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        inputs = self.split_batch(batch)
        hidden, neural = self.encode(inputs)  # [B, C, D] each
        out = {
            "id_logits": self.head_id(hidden[:, :-1]),  # position i predicts token i + 1
            "dt_logits": self.head_dt(hidden[:, :-1]),
            "id_targets": inputs.cur_ids[:, 1:],
            "dt_targets": inputs.cur_dt[:, 1:],
            "target_mask": inputs.cur_mask[:, 1:],
            "temperature": torch.tensor(self.config.temperature),
            "behavior_weight": torch.tensor(self.config.behavior_weight),
        }
        if inputs.behavior is not None:
            # Sum over the chunk's tokens / block_size, as the code's x.mean(dim=1) over the padded
            # block: a masked mean would drop how many spikes the chunk holds.
            pooled = _masked_sum(neural, inputs.cur_mask) / self.config.block_size  # [B, D]
            out["behavior"] = self.decode_behavior(pooled, inputs.behavior_pos)
            out["behavior_valid"] = inputs.behavior_mask
            if self.config.contrastive:
                behavior = self._behavior_tokens(inputs)  # [B, Q, D]
                out["neural_embedding"] = self.clip(pooled)
                out["behavior_embedding"] = self.clip(_masked_mean(behavior, inputs.behavior_mask))
        return out

    def encode(self, inputs: EventInputs) -> tuple[Tensor, Tensor]:
        """(final hidden states, neural-only features), both [B, C, D] over the current chunk."""
        c, p = inputs.cur_ids.shape[1], inputs.past_ids.shape[1]
        if c > self.config.block_size or p > self.config.prev_block_size:
            raise ValueError(
                f"window has {c} current / {p} past tokens, more than block_size={self.config.block_size} / "
                f"prev_block_size={self.config.prev_block_size}; tokenize with the model's tokenizer (it truncates)"
            )
        x = self.embed_dropout(
            self.id_embedding(inputs.cur_ids) + self.dt_embedding(inputs.cur_dt) + self.position[:c]
        )  # [B, C, D]
        past = self.embed_dropout(
            self.id_embedding(inputs.past_ids) + self.dt_embedding(inputs.past_dt) + self.past_position[:p]
        )  # [B, P, D]
        causal = causal_mask(c, device=x.device)  # [C, C]
        for block in self.encoder:
            x = block(x, key_mask=inputs.cur_mask, attn_mask=causal)
        for block in self.history:
            x = block(x, past, key_mask=inputs.past_mask)
        neural = x
        if len(self.stimulus) and inputs.behavior is not None:
            behavior = self._behavior_tokens(inputs)
            for block in self.stimulus:
                x = block(x, behavior, key_mask=inputs.behavior_mask)
        for block in self.decoder:
            x = block(x, key_mask=inputs.cur_mask, attn_mask=causal)
        return self.norm(x), neural

    def next_token_logits(self, inputs: EventInputs) -> tuple[Tensor, Tensor]:
        """Id and dt logits for the token after the last current position: [B, n_units + 3], [B, n_dt]."""
        hidden, _ = self.encode(inputs)
        last = hidden[:, -1]  # [B, D]
        return self.head_id(last), self.head_dt(last)

    def decode_behavior(self, pooled: Tensor, positions: Tensor) -> Tensor:
        """Behaviour at each query slot from pooled neural features: [B, D], [B, Q] -> [B, Q, Db]."""
        return self.behavior_head(pooled[:, None, :] + self.behavior_time(positions))

    def _behavior_tokens(self, inputs: EventInputs) -> Tensor:
        values = torch.nan_to_num(inputs.behavior.float())
        return self.embed_dropout(self.behavior_embedding(values) + self.behavior_time(inputs.behavior_pos))

    # ------------------------------------------------------------------ batch -> inputs
    def split_batch(self, batch: Batch) -> EventInputs:
        """Past and current chunks of a padded event-token batch as separate right-padded tensors."""
        if batch.packed:
            raise ValueError("Neuroformer reads padded batches (collate with pack=False)")
        if "dt_token" not in batch.extras:
            raise ValueError("Neuroformer reads EventTokenizer tokens (extras['dt_token'] is missing)")
        ids, dts, mask = batch.values.long(), batch.extras["dt_token"].long(), batch.mask  # [B, L]
        n_units = (batch.unit_offsets[1:] - batch.unit_offsets[:-1])
        if bool((n_units != self.n_units).any()):
            raise ValueError(
                f"Neuroformer was built for one session of {self.n_units} units; got windows with "
                f"{sorted(set(n_units.tolist()))} units"
            )
        n_past = ((batch.token_type == TokenType.CONTEXT) & mask).sum(1)  # [B]
        n_cur = mask.sum(1) - n_past  # [B], SOS .. EOS
        pads = (self.specials["pad"], self.events.dt_pad)
        past = _gather(ids, dts, torch.zeros_like(n_past), n_past, *pads)
        cur = _gather(ids, dts, n_past, n_cur, *pads)
        inputs = EventInputs(*past, *cur)
        if batch.query_timestamps is not None and batch.targets:
            key = self.config.behavior_key
            if key not in batch.targets:
                raise KeyError(f"batch has targets {sorted(batch.targets)}, not '{key}'")
            span0 = batch.duration[:, None] - self.config.current_window - self.config.past_window  # [B, 1]
            slot = torch.round((batch.query_timestamps.double() - span0) / self.config.resolution)  # [B, Q]
            target = batch.targets[key]
            inputs.behavior = target
            inputs.behavior_mask = batch.query_mask & (slot >= 0) & torch.isfinite(target).all(-1)
            inputs.behavior_pos = slot.clamp(0, self.config.behavior_positions - 1).long()
        return inputs


def _gather(ids: Tensor, dts: Tensor, start: Tensor, length: Tensor, id_pad: int, dt_pad: int) -> tuple[Tensor, ...]:
    width = max(int(length.max()) if length.numel() else 0, 1)
    offsets = torch.arange(width, device=ids.device)  # [W]
    valid = offsets[None, :] < length[:, None]  # [B, W]
    index = (start[:, None] + offsets[None, :]).clamp(max=ids.shape[1] - 1)  # [B, W]
    return (
        torch.where(valid, ids.gather(1, index), id_pad),
        torch.where(valid, dts.gather(1, index), dt_pad),
        valid,
    )


def _masked_sum(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask.to(x.dtype)[..., None]).sum(1)  # [B, D]


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    weights = mask.to(x.dtype)[..., None]  # [B, L, 1]
    return (x * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # [B, D]


def neuroformer_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Next-id and next-dt cross-entropy (PAD ignored), InfoNCE and behaviour MSE, weighted as the code."""
    mask = outputs["target_mask"]
    ce_id = F.cross_entropy(outputs["id_logits"][mask], outputs["id_targets"][mask])
    ce_dt = F.cross_entropy(outputs["dt_logits"][mask], outputs["dt_targets"][mask])
    metrics = {"ce_id": ce_id.detach(), "ce_dt": ce_dt.detach()}
    tokens = ID_WEIGHT * ce_id + DT_WEIGHT * ce_dt
    loss = tokens
    if "neural_embedding" in outputs:
        contrastive = info_nce(outputs["neural_embedding"], outputs["behavior_embedding"],
                               temperature=float(outputs["temperature"]))
        loss = (1 - 1 / CONTRASTIVE_N) * tokens + contrastive / CONTRASTIVE_N
        metrics["contrastive"] = contrastive.detach()
    if "behavior" in outputs:
        target = batch.targets[next(iter(batch.targets))]
        valid = outputs["behavior_valid"][..., None].expand_as(target)
        behavior = mse(outputs["behavior"], torch.nan_to_num(target), valid)
        loss = loss + float(outputs["behavior_weight"]) * behavior
        metrics["behavior_mse"] = behavior.detach()
    return loss, metrics


def _sizes(recordings: Sequence[Recording], config: NeuroformerConfig) -> dict[str, Any]:
    if len({r.session for r in recordings}) != 1:
        raise ValueError(
            "Neuroformer models one session's neurons (its id vocabulary is that session's units); "
            f"train it on one session (data.sessions: [<id>]), got {[r.session for r in recordings]}"
        )
    recording = recordings[0]
    if config.behavior_key not in recording.behavior:
        raise ValueError(
            f"Neuroformer aligns spikes with behaviour '{config.behavior_key}', which {recording.session} lacks "
            f"(has {sorted(recording.behavior)}); set model.overrides.behavior_key"
        )
    return {"n_units": recording.n_units, "behavior_dim": recording.behavior[config.behavior_key].dim}


def _tokenizer(config: NeuroformerConfig, **overrides: Any) -> EventTokenizer:
    return EventTokenizer(config.event_config(**overrides))


SPEC = register(
    ModelSpec(
        name="neuroformer", config_cls=NeuroformerConfig, model_cls=Neuroformer, presets=PRESETS,
        make_tokenizer=_tokenizer, objective=neuroformer_objective, sizes_from_data=_sizes, task="self_supervised",
        pack=False, multi_session=False,
        # spikes are generated causally, but each chunk cross-attends to the behaviour of the whole chunk
        causal=False,
    )
)
