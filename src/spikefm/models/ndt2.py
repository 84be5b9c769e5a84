"""NDT2 (Ye et al. 2023): space-time patch tokens, context tokens, MAE pretraining, decoding fine-tune.

A token is one bin of ``neurons_per_patch`` units: each count goes through
``Embedding(max_count + 1, dim / neurons_per_patch)`` and the pieces are concatenated into one
``dim``-wide token, to which learned time and space (patch group) embeddings are added.
Context tokens (session, subject, optionally task; growable tables keyed by name) are appended
to the sequence: every data token may attend to them, they attend only to each other.

Self-supervised (``ndt2``): MAE-style shuffle infill. The tokens are shuffled, the encoder sees
the first ``1 - mask_ratio`` of them, and a thin decoder reads the encoder outputs plus a
learned mask token at every hidden position (with fresh time / space embeddings and the
context tokens) and predicts each hidden token's log-rates. Held-out units sit in the patch grid
zero-filled; in eval every token gets a mask-token query in the decoder, which predicts all of
its channels, held-out ones included (NLB co-smoothing), as training predicted hidden tokens.

Decoding (``ndt2_decoder``): the encoder sees every token; its outputs are mean-pooled per time
step and a decoder reads them with one learned query token per step (plus the detached context
tokens); a linear read-out gives the behaviour. ``init_from`` loads a pretrained ``ndt2``
checkpoint's patch embedding, encoder and context tables first.

A new session learns only its context rows (:meth:`NDT2.add_session`,
:meth:`NDT2.freeze_for_recalibration`, :func:`spikefm.eval.context_adaptation.adapt_context`).

Source: joel99/context_general_bci @8b7226c ``model.py``, ``components.py``
(SpaceTimeTransformer), ``task_io.py`` (ShuffleInfill, BehaviorRegression),
``config/config_base.py`` + ``config/model/flat_enc_dec`` (FlatEncDecModelConfig),
``config/exp/arch/base/f32.yaml`` and ``base/probe/f32.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.identity import ContextTokens
from spikefm.models._shared import behavior_width, train_only
from spikefm.nn.transformer import TorchStyleBlock
from spikefm.objectives.behavior import behavior_mse, single_target
from spikefm.objectives.losses import poisson_nll
from spikefm.tokenize.base import Batch
from spikefm.tokenize.binned import PatchConfig, PatchTokenizer
from spikefm.train.checkpoints import safe_load

__all__ = ["NDT2Config", "NDT2", "ndt2_objective", "ndt2_decoder_objective", "PRESETS", "DECODER_PRESETS"]

CONTEXT_FIELDS = ("session", "subject", "task")


@dataclass
class NDT2Config:
    """NDT2 architecture (shared by the self-supervised and the decoding model).

    Attributes:
        dim: token width (``hidden_size`` / ``n_state``).
        depth: encoder layers.
        heads: attention heads.
        ffn_mult: feed-forward width / dim (``feedforward_factor``).
        dropout: dropout everywhere (``transformer.dropout``).
        pre_norm: pre-LayerNorm blocks (NDT2: post-norm, ``pre_norm: False``).
        decoder_depth: layers of the infill / behaviour decoder (``decoder_layers``).
        neurons_per_patch: units per token (``neurons_per_token``).
        max_count: counts are clipped to this before embedding (``max_neuron_count - 1``).
        count_embed: ``"token"``: ``Embedding(max_count + 1, dim / neurons_per_patch)`` per count
            (NDT2's ``spike_embed_style: token``); ``"project"``: ``Linear(1, dim / neurons_per_patch)``
            (``spike_embed_style: project``, ordinal in the count).
        mask_ratio: fraction of tokens the encoder does not see (shuffle infill).
        causal: tokens attend only to tokens at the same or earlier time steps.
        max_time_patches: learned time table size in bins (``max_trial_length``).
        max_space_patches: learned space table size in patch groups (``max_channels / 32``).
        context: context token fields, a subset of ("session", "subject", "task") in order.
        behavior_key: behaviour series the decoder reads (decoding model only).
        init_from: path of an ``ndt2`` checkpoint whose embedding, encoder and context tables
            initialise this model ("" = none).
        bin_size: seconds per bin.
    """

    dim: int = 256
    depth: int = 6
    heads: int = 4
    ffn_mult: float = 1.0
    dropout: float = 0.1
    pre_norm: bool = False
    decoder_depth: int = 2
    neurons_per_patch: int = 32
    max_count: int = 20
    count_embed: str = "token"
    mask_ratio: float = 0.5
    causal: bool = True
    max_time_patches: int = 250
    max_space_patches: int = 9
    context: tuple[str, ...] = ("session", "subject")
    behavior_key: str = "hand_vel"
    init_from: str = ""
    bin_size: float = 0.02

    def __post_init__(self) -> None:
        self.context = tuple(self.context)
        if min(self.dim, self.depth, self.heads, self.decoder_depth, self.neurons_per_patch, self.max_count) < 1:
            raise ValueError("NDT2Config: dim, depth, heads, decoder_depth, neurons_per_patch, max_count must be >= 1")
        if self.dim % self.neurons_per_patch:
            raise ValueError(
                f"NDT2Config.dim ({self.dim}) must be a multiple of neurons_per_patch ({self.neurons_per_patch}): "
                "each count gets dim / neurons_per_patch embedding dims"
            )
        if self.count_embed not in ("token", "project"):
            raise ValueError(f"NDT2Config.count_embed must be 'token' or 'project', got {self.count_embed!r}")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"NDT2Config.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        unknown = [f for f in self.context if f not in CONTEXT_FIELDS]
        if unknown or len(set(self.context)) != len(self.context):
            raise ValueError(f"NDT2Config.context must be distinct fields of {CONTEXT_FIELDS}, got {self.context}")


PRESETS: dict[str, dict[str, Any]] = {
    # FlatEncDecModelConfig (config_base): hidden 256, 6 layers, 4 heads, feedforward_factor 1,
    # dropout 0.1, learned time / space positions, max_trial_length 250, encode_decode with 2
    # decoder layers, post-norm, GELU. exp/arch/base/f32.yaml: neurons_per_token 32, mask_ratio 0.5,
    # causal, subject token (+ session token by default), max_channels 288 -> 9 space patches.
    "f32": {},
    # CPU-sized. Bidirectional (co-smoothing), pre-norm (stable at lr 3e-3). 32-unit patches and
    # dropout 0.1 as published (f32.yaml); 32-unit patches also halve the tokens (and the CPU time)
    # of 16-unit ones. Provisional: chosen in development runs scored before the evaluation protocol;
    # re-choose on validation with `spikefm bench` (docs/results/protocol.md).
    "tiny": {"dim": 64, "depth": 2, "heads": 2, "ffn_mult": 2.0, "decoder_depth": 1, "neurons_per_patch": 32,
             "causal": False, "pre_norm": True, "max_space_patches": 16, "dropout": 0.1},
}
# base/probe/f32.yaml + BhvrDecodeFlatTaskConfig: the same backbone fine-tuned with a separate
# 2-layer token decoder over mean-pooled time steps.
DECODER_PRESETS: dict[str, dict[str, Any]] = {
    "f32": dict(PRESETS["f32"]),
    # Supervised decoding from ~70 training trials is prone to overfit: dropout 0.2, with the
    # tiny 32-unit patches. Provisional until re-chosen on validation with `spikefm bench`.
    "tiny": {**PRESETS["tiny"], "dropout": 0.2},
}


class _SpaceTime(nn.Module):
    """NDT2's flat SpaceTimeTransformer: tokens + time / space embeddings, context appended.

    Shapes:
        forward(x [B, L, D], times [B, L] long, space [B, L] long, valid [B, L], context [B, C, D])
        -> [B, L, D]
    """

    def __init__(self, config: NDT2Config, depth: int) -> None:
        super().__init__()
        self.causal = config.causal
        self.time_embed = nn.Embedding(config.max_time_patches, config.dim)
        self.space_embed = nn.Embedding(config.max_space_patches, config.dim)
        self.dropout_in, self.dropout_out = nn.Dropout(config.dropout), nn.Dropout(config.dropout)
        self.layers = nn.ModuleList(
            TorchStyleBlock(dim=config.dim, heads=config.heads, ffn_dim=int(config.dim * config.ffn_mult),
                   dropout=config.dropout, pre_norm=config.pre_norm)
            for _ in range(depth)
        )  # fmt: skip
        self.final_norm = nn.LayerNorm(config.dim) if config.pre_norm else nn.Identity()

    def forward(self, x: Tensor, times: Tensor, space: Tensor, valid: Tensor, context: Tensor) -> Tensor:
        if int(times.max()) >= self.time_embed.num_embeddings or int(space.max()) >= self.space_embed.num_embeddings:
            raise ValueError(
                f"NDT2 got {int(times.max()) + 1} time steps / {int(space.max()) + 1} patch groups but its tables hold "
                f"{self.time_embed.num_embeddings} / {self.space_embed.num_embeddings}; raise max_time_patches / "
                "max_space_patches (or use larger neurons_per_patch)"
            )
        x = self.dropout_in(x) + self.time_embed(times) + self.space_embed(space)  # [B, L, D]
        n = x.shape[1]
        h = torch.cat([x, context], dim=1)  # [B, L + C, D]
        mask = _attention_mask(times, valid, context.shape[1], self.causal)  # [B, L + C, L + C]
        for layer in self.layers:
            h = layer(h, mask)
        return self.dropout_out(self.final_norm(h)[:, :n])


def _attention_mask(times: Tensor, valid: Tensor, n_context: int, causal: bool) -> Tensor:
    """Data tokens see valid (earlier, if causal) tokens and all context; context sees context only."""
    b, n = valid.shape
    allowed = valid[:, None, :].expand(b, n, n)  # [B, L, L] keys must be real
    if causal:
        allowed = allowed & (times[:, None, :] <= times[:, :, None])
    ones = valid.new_ones(b, n, n_context)
    top = torch.cat([allowed, ones], dim=2)  # [B, L, L + C]
    bottom = torch.cat([valid.new_zeros(b, n_context, n), valid.new_ones(b, n_context, n_context)], dim=2)
    return torch.cat([top, bottom], dim=1)


class NDT2(nn.Module):
    """NDT2: self-supervised shuffle infill, or (with ``behavior_dim``) behaviour decoding.

    Args:
        config: architecture.
        context_keys: {"session": [...], "subject": [...], "task": [...]} initial vocabularies.
        session_context: session -> {"subject": ..., "task": ...} (where each session belongs).
        behavior_dim: width of the decoded behaviour; None builds the self-supervised model.

    Shapes:
        forward(batch of patch tokens, values [B, L, P]) -> ``log_rates`` [B, T, U], ``counts``
        [B, T, U] and ``loss_mask`` [B, T, U] (U = the batch's most units, in unit order); or,
        decoding, ``behavior`` [B, Q, behavior_dim] at ``batch.query_timestamps``.
    """

    def __init__(
        self,
        config: NDT2Config,
        *,
        context_keys: Mapping[str, Sequence[str]],
        session_context: Mapping[str, Mapping[str, str]],
        behavior_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config, self.behavior_dim = config, behavior_dim
        self.session_context = {s: dict(v) for s, v in session_context.items()}
        self._adapting: set[tuple[str, str]] = set()
        per_count = config.dim // config.neurons_per_patch
        if config.count_embed == "token":
            self.count_embed: nn.Module = nn.Embedding(config.max_count + 1, per_count)
        else:
            self.count_embed = nn.Linear(1, per_count)
        self.context = ContextTokens(dim=config.dim, fields=config.context,
                                     keys={f: list(context_keys.get(f, ())) for f in config.context})  # fmt: skip
        for table in self.context.tables.values():  # NDT2's context nn.Embedding: N(0, 1) rows, new ones too
            table.init_std = 1.0
            nn.init.normal_(table.weight, std=1.0)
        self.encoder = _SpaceTime(config, config.depth)
        self.decoder = _SpaceTime(config, config.decoder_depth)
        if behavior_dim is None:
            self.mask_token = nn.Parameter(torch.randn(config.dim))
            self.readout = nn.Linear(config.dim, config.neurons_per_patch)
        else:
            self.query_token = nn.Parameter(torch.randn(config.dim))
            self.readout = nn.Linear(config.dim, behavior_dim)
        if config.init_from:
            self.load_pretrained(config.init_from)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        patches = batch.values.long()  # [B, L, P]
        if patches.shape[-1] != self.config.neurons_per_patch:
            raise ValueError(
                f"NDT2 was built for {self.config.neurons_per_patch}-unit patches, got {patches.shape[-1]}; "
                "tokenize with PatchTokenizer(neurons_per_patch=..., bins_per_patch=1)"
            )
        real = batch.extras["channel_mask"].bool() & batch.mask[..., None]  # [B, L, P]
        heldout = self._heldout_channels(batch) & real  # [B, L, P]
        seen = patches.clamp(0, self.config.max_count).masked_fill(heldout | ~real, 0)  # held-out zero-filled
        pieces = self.count_embed(seen if self.config.count_embed == "token" else seen[..., None].float())
        tokens = pieces.flatten(2)  # [B, L, P, D / P] -> [B, L, D]
        context = self.context(self._context_keys(batch))  # [B, C, D]
        times, space = batch.extras["patch_time"].long(), batch.extras["patch_group"].long()  # [B, L]
        if self.behavior_dim is not None:
            return {"behavior": self._decode_behavior(batch, tokens, times, space, context)}
        log_rates, hidden = self._infill(tokens, times, space, batch.mask, context)  # [B, L, P], [L]
        # Training scores hidden tokens (all their channels, as ShuffleInfill); eval the held-out ones.
        loss_mask = real & (hidden[None, :, None] if self.training else heldout)
        return {
            "log_rates": self._unpatchify(log_rates, batch),  # [B, T, U]
            "counts": self._unpatchify(batch.values.float(), batch),
            "loss_mask": self._unpatchify(loss_mask, batch),
        }

    def _infill(
        self, tokens: Tensor, times: Tensor, space: Tensor, valid: Tensor, context: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Shuffle infill. -> log-rates [B, L, P] of every token as if hidden, and the hidden tokens [L].

        Training: the encoder reads a random ``1 - mask_ratio`` of the tokens, the decoder reads
        their features plus the mask token at every other position. Eval: the encoder reads every
        token and the decoder reads their features plus a mask-token query at every position, so
        each token (its held-out channels included) is predicted the way training predicted it.
        """
        b, n, d = tokens.shape
        hidden = torch.zeros(n, dtype=torch.bool, device=tokens.device)
        if not self.training:
            features = self.encoder(tokens, times, space, valid, context)
            queries = torch.cat([features, self.mask_token.expand(b, n, d)], dim=1)  # [B, 2L, D]
            twice = [torch.cat([t, t], dim=1) for t in (times, space, valid)]
            return self.readout(self.decoder(queries, *twice, context)[:, n:]), hidden
        order = torch.randperm(n, device=tokens.device)  # one shuffle per batch, as ShuffleInfill
        keep = max(1, int((1 - self.config.mask_ratio) * n))
        seen = order[:keep]
        hidden[order[keep:]] = True
        features = self.encoder(tokens[:, seen], times[:, seen], space[:, seen], valid[:, seen], context)
        queries = torch.cat([features, self.mask_token.expand(b, n - keep, d)], dim=1)  # [B, L, D] shuffled
        out = self.decoder(queries, times[:, order], space[:, order], valid[:, order], context)
        return self.readout(out)[:, order.argsort()], hidden  # unshuffled [B, L, P]

    def _decode_behavior(self, batch: Batch, tokens: Tensor, times: Tensor, space: Tensor, context: Tensor) -> Tensor:
        if batch.query_timestamps is None:
            raise ValueError("ndt2_decoder needs behaviour queries: tokenize with PatchConfig(query='bins')")
        features = self.encoder(tokens, times, space, batch.mask, context)  # [B, L, D]
        pooled, step_valid = _mean_per_step(features, times, batch.mask)  # [B, S, D], [B, S]
        steps = torch.arange(pooled.shape[1], device=pooled.device).expand(pooled.shape[0], -1)  # [B, S]
        queries = self.query_token.expand_as(pooled)
        x = torch.cat([pooled, queries], dim=1)  # [B, 2S, D]
        zeros = torch.zeros_like(torch.cat([steps, steps], dim=1))
        out = self.decoder(x, torch.cat([steps, steps], 1), zeros, torch.cat([step_valid, step_valid], 1),
                           context.detach())[:, pooled.shape[1]:]  # fmt: skip
        step_of_query = (batch.query_timestamps / self.config.bin_size).long().clamp(0, pooled.shape[1] - 1)
        picked = out.gather(1, step_of_query[..., None].expand(-1, -1, out.shape[-1]))  # [B, Q, D]
        return self.readout(picked)

    # ------------------------------------------------------------------ layout helpers
    def _context_keys(self, batch: Batch) -> dict[str, list[str]]:
        keys: dict[str, list[str]] = {"session": list(batch.sessions)}
        for field in ("subject", "task"):
            if field in self.config.context:
                missing = [s for s in batch.sessions if s not in self.session_context]
                if missing:
                    raise KeyError(f"NDT2 has no {field} for session(s) {sorted(set(missing))}; call add_session first")
                keys[field] = [self.session_context[s].get(field, "") for s in batch.sessions]
        return keys

    def _heldout_channels(self, batch: Batch) -> Tensor:
        """Whether each patch channel is a held-out unit: bool [B, L, P]."""
        npp = self.config.neurons_per_patch
        flags = _per_sample_units(batch, batch.unit_extras["heldout"], False)  # [B, U]
        groups = -(-flags.shape[1] // npp)
        grid = torch.zeros(flags.shape[0], groups * npp, dtype=torch.bool)
        grid[:, : flags.shape[1]] = flags
        grid = grid.view(flags.shape[0], groups, npp).to(batch.values.device)  # [B, G, P]
        group = batch.extras["patch_group"].long().clamp(max=groups - 1)  # [B, L]
        return grid.gather(1, group[..., None].expand(-1, -1, npp))

    def _unpatchify(self, x: Tensor, batch: Batch) -> Tensor:
        """Per-token channels [B, L, P] -> per-bin unit vectors [B, T, U] (padding 0 / False)."""
        times, group, valid = batch.extras["patch_time"].long(), batch.extras["patch_group"].long(), batch.mask
        b, _, npp = x.shape
        n_steps, n_groups = int(times.max()) + 1, int(group.max()) + 1
        grid = x.new_zeros(b, n_steps, n_groups, npp)  # [B, T, G, P]
        rows = torch.arange(b, device=x.device)[:, None].expand_as(times)
        grid[rows[valid], times[valid], group[valid]] = x[valid]
        n_units = int(batch.unit_offsets.diff().max())
        return grid.flatten(2)[:, :, :n_units]

    # ------------------------------------------------------------------ new sessions, pretrained weights
    def add_session(self, recording: Recording) -> list[tuple[str, str]]:
        """Add context rows for ``recording`` (session, and subject / task if new); returns what was added."""
        info = {"subject": recording.subject, "task": str(recording.metadata.get("task", ""))}
        self.session_context[recording.session] = info
        added = []
        for field in self.config.context:
            key = recording.session if field == "session" else info[field]
            if key not in self.context.tables[field]:
                self.context.tables[field].extend([key])
                added.append((field, key))
        self._adapting |= set(added)
        return added

    def freeze_for_recalibration(self, recording: Recording) -> list[nn.Parameter]:
        """Train only the context rows :meth:`add_session` added for ``recording``; returns their tables' weights."""
        if recording.session not in self.context.tables["session"]:
            raise KeyError(f"session {recording.session!r} has no context row; call add_session(recording) first")
        rows = [(self.context.tables[field], keys) for field in self.config.context
                if (keys := [k for f, k in self._adapting if f == field])]
        if not rows:
            raise ValueError(f"no new context rows to learn for {recording.session!r}")
        return train_only(self, [], rows)

    def load_pretrained(self, path: str | Path) -> None:
        """Copy the patch embedding, encoder and context tables of an ``ndt2`` checkpoint into this model."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"NDT2 init_from={str(path)!r} not found; train `configs/ndt2_tiny.yaml` first")
        state = safe_load(path)  # weights_only: loading a checkpoint never runs code from it
        state = state.get("state_dict", state)
        prefix = "model." if any(k.startswith("model.") for k in state) else ""
        shared = ("count_embed.", "encoder.", "context.")
        subset = {k[len(prefix):]: v for k, v in state.items()
                  if k.startswith(prefix) and k[len(prefix):].startswith(shared)}  # fmt: skip
        if not subset:
            raise ValueError(f"{path} holds no NDT2 encoder weights (keys like 'model.encoder.*')")
        own = {f: self.context.tables[f].keys for f in self.config.context}
        self.load_state_dict(subset, strict=False)
        for field, keys in own.items():
            self.context.tables[field].extend(keys)  # sessions this model needs but the checkpoint lacks


def _mean_per_step(features: Tensor, times: Tensor, valid: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of the valid tokens at each time step (``decode_time_pool: mean``). -> [B, S, D], [B, S]."""
    b, _, d = features.shape
    n_steps = int(times.max()) + 1
    weights = valid.to(features.dtype)  # [B, L]
    total = features.new_zeros(b, n_steps, d).index_put_(
        (torch.arange(b, device=features.device)[:, None].expand_as(times), times), features * weights[..., None],
        accumulate=True,
    )  # fmt: skip
    count = features.new_zeros(b, n_steps).scatter_add_(1, times, weights)  # [B, S]
    return total / count.clamp(min=1)[..., None], count > 0


def _per_sample_units(batch: Batch, values: Any, fill: Any) -> Tensor:
    """A per-unit field (``[sum U]``, aligned with ``batch.unit_keys``) padded to [B, max U]."""
    values = torch.as_tensor(values)
    offsets = batch.unit_offsets.tolist()
    width = max(b - a for a, b in zip(offsets[:-1], offsets[1:]))
    out = torch.full((len(offsets) - 1, width), fill, dtype=values.dtype)
    for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        out[i, : b - a] = values[a:b]
    return out


def ndt2_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Poisson NLL (log-rates) on hidden tokens' channels (training) or held-out channels (eval)."""
    loss = poisson_nll(outputs["log_rates"], outputs["counts"], outputs["loss_mask"])
    return loss, {"masked_fraction": outputs["loss_mask"].float().mean()}


def ndt2_decoder_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """MSE between decoded and true behaviour at the valid queries."""
    target = single_target(batch, "ndt2_decoder")  # [B, Q, D]
    return behavior_mse(outputs["behavior"], target, batch.query_mask), {}


def _context_sizes(recordings: Sequence[Recording]) -> dict[str, Any]:
    session_context = {r.session: {"subject": r.subject, "task": str(r.metadata.get("task", ""))} for r in recordings}
    keys = {
        "session": [r.session for r in recordings],
        "subject": sorted({v["subject"] for v in session_context.values()}),
        "task": sorted({v["task"] for v in session_context.values()}),
    }
    return {"context_keys": keys, "session_context": session_context}


def _sizes(recordings: Sequence[Recording], config: NDT2Config) -> dict[str, Any]:
    return _context_sizes(recordings)


def _decoder_sizes(recordings: Sequence[Recording], config: NDT2Config) -> dict[str, Any]:
    width = behavior_width(recordings, config.behavior_key, "ndt2_decoder")
    return {**_context_sizes(recordings), "behavior_dim": width}


def _tokenizer(config: NDT2Config, **overrides: Any) -> PatchTokenizer:
    return PatchTokenizer(
        PatchConfig(**{"bin_size": config.bin_size, "neurons_per_patch": config.neurons_per_patch,
                       "bins_per_patch": 1, "query": "none", **overrides})
    )  # fmt: skip


def _decoder_tokenizer(config: NDT2Config, **overrides: Any) -> PatchTokenizer:
    return _tokenizer(config, **{"query": "bins", "behavior_keys": (config.behavior_key,), **overrides})


SPEC = register(
    ModelSpec(
        name="ndt2", config_cls=NDT2Config, model_cls=NDT2, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=ndt2_objective, sizes_from_data=_sizes, task="self_supervised", multi_session=True,
        causal=lambda c: c.causal,  # NDT2Config.causal: tokens attend to the same or earlier time steps
    )
)
DECODER_SPEC = register(
    ModelSpec(
        name="ndt2_decoder", config_cls=NDT2Config, model_cls=NDT2, presets=DECODER_PRESETS,
        make_tokenizer=_decoder_tokenizer, objective=ndt2_decoder_objective, sizes_from_data=_decoder_sizes,
        task="decoding", multi_session=True,
        causal=lambda c: c.causal,
    )
)
