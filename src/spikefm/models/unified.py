"""Unified: POYO's spike timing, SPINT's label-free identity, MtM's multi-task masking, POSSM's real-time core.

A recipe of spikefm parts (docs/models/unified.md explains each choice):

1. **Tokens (POYO).** One token per spike = its unit's identity + a token-type embedding (spike /
   unit START); rotary embeddings of the exact spike times. END tokens are dropped: they sit at
   the window's end, which a causal model has not reached.
2. **Identity (SPINT).** A unit's identity is :class:`~spikefm.nn.IDEncoder` applied to its own
   *unlabeled* activity elsewhere: registered calibration windows (:meth:`Unified.calibrate`) or,
   in a batch, the other windows of its session (cross-fitted, :mod:`spikefm.nn.calibration`). No
   parameter is indexed by unit or session; units are an unordered set. Optional second mode:
   :meth:`add_session` + :meth:`freeze_for_recalibration` learn a per-unit offset by gradient (POYO).
3. **Core (POSSM).** Spikes cut into ``chunk`` s chunks; ``latents_per_chunk`` latents per chunk
   cross-attend to its tokens; a recurrent core (GRU or diagonal selective SSM) carries state;
   queries read the core outputs of their own chunk and the ones before it: causal, so
   :meth:`stream_step` equals the offline pass (:class:`spikefm.realtime.StreamingDecoder`).
4. **Readouts (MtM + POYO+).** A query is a task token (+ a scheme's prompt token + the unit's
   identity for a unit target) at a time. Behaviour: one readout per behaviour key. Spike counts
   per unit per chunk (Poisson): one MtM scheme per training batch
   (:mod:`spikefm.objectives.unit_masking`) hides units' spikes from the input and scores counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.models._shared import EMBEDDING_INIT_STD, RegisteredCalibration, behavior_width, unit_dropout_keep
from spikefm.models.registry import ModelSpec, register
from spikefm.nn import Attention, CrossAttentionBlock, IDEncoder, KeyedEmbedding, RotaryTimeEmbedding, UnitEmbedding
from spikefm.nn.calibration import pool_other_folds, session_folds
from spikefm.nn.chunking import chunk_grid, chunk_index
from spikefm.nn.recurrent import gru_weights, make_core, step_core
from spikefm.nn.transformer import attend_projected, make_ffn, rotated_queries
from spikefm.objectives.behavior import behavior_mse
from spikefm.objectives.losses import poisson_nll
from spikefm.objectives.unit_masking import UnitMasks, eligible_schemes, region_ids, unit_masks
from spikefm.tokenize.base import N_TOKEN_TYPES, Batch, TokenType
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer

__all__ = ["UnifiedConfig", "Unified", "UnifiedState", "unified_objective", "PRESETS"]

SCHEMES = ("neuron", "causal", "intra_region", "inter_region")


@dataclass
class UnifiedConfig:
    """Unified architecture (sources of each default in PRESETS and docs/models/unified.md).

    Attributes:
        dim, heads, head_dim: token width and the cross-attentions' shape.
        latents_per_chunk, chunk, context_chunks: POSSM's encoder and read-out window.
        core, rnn_dim, rnn_layers, rnn_dropout, ssm_state_dim, ssm_expand: the recurrent core.
        dropout: feed-forward dropout. t_min, t_max: rotary period range (s).
        id_bin, id_window, id_hidden: IDEncoder bins (s), calibration window (s), MLP width.
        calibration_windows: windows :meth:`Unified.calibrate` takes when none are named.
        schemes: MtM schemes alternated per training batch (empty: behaviour only).
        count_weight: weight of the Poisson count loss against the behaviour MSE.
        count_rows: in training, at most this many scored (window, unit) rows per batch, drawn at
            random (each row is ``C`` decoder queries; all rows are decoded in evaluation).
        heldout_targets: units flagged ``heldout`` (NLB co-smoothing) never enter the input and
            their counts are always scored, as MtM treats them.
        unit_dropout, min_units: POYO's unit dropout in training.
        behavior_keys: behaviour series decoded, one readout each (the first is ``behavior``).
        query_rate_hz: behaviour query rate.
        token_counts: add to each token a learned linear map of ``log1p`` of its unit's spike
            count in the token's chunk (an observed per-token feature, as SPINT's activity token).
    """

    dim: int = 128
    heads: int = 2
    head_dim: int = 64
    latents_per_chunk: int = 4
    chunk: float = 0.05
    context_chunks: int = 3
    core: str = "gru"
    rnn_dim: int = 512
    rnn_layers: int = 2
    rnn_dropout: float = 0.2
    ssm_state_dim: int = 16
    ssm_expand: int = 2
    dropout: float = 0.2
    t_min: float = 1e-4
    t_max: float = 10.0
    id_bin: float = 0.02
    id_window: float = 1.0
    id_hidden: int = 256
    calibration_windows: int = 8
    schemes: tuple[str, ...] = SCHEMES
    count_weight: float = 1.0
    count_rows: int = 256
    heldout_targets: bool = True
    unit_dropout: bool = True
    min_units: int = 30
    behavior_keys: tuple[str, ...] = ("hand_vel",)
    query_rate_hz: float = 100.0
    token_counts: bool = False

    def __post_init__(self) -> None:
        self.schemes, self.behavior_keys = tuple(self.schemes), tuple(self.behavior_keys)
        unknown = set(self.schemes) - set(SCHEMES)
        if unknown:
            raise ValueError(f"UnifiedConfig.schemes: unknown {sorted(unknown)}; choose from {SCHEMES}")
        if min(self.dim, self.heads, self.head_dim, self.latents_per_chunk, self.context_chunks, self.rnn_layers) < 1:
            raise ValueError("UnifiedConfig: widths, heads, latents, context_chunks and rnn_layers must be >= 1")
        if not (self.chunk > 0 and 0 < self.id_bin <= self.id_window and self.query_rate_hz > 0):
            raise ValueError("UnifiedConfig needs chunk > 0, 0 < id_bin <= id_window and query_rate_hz > 0")

    @property
    def behavior_key(self) -> str:
        """The main behaviour series (``outputs["behavior"]``)."""
        return self.behavior_keys[0]

    @property
    def id_bins(self) -> int:
        return int(math.ceil(self.id_window / self.id_bin - 1e-9))


PRESETS: dict[str, dict[str, Any]] = {
    # Published sizes, each part from its parent: POSSM-GRU 9M's chunk 0.05 s, head_dim 64,
    # context 3, dim 256, GRU x 512, dropout 0.2, rotary 1e-4..10 s (torch_brain branch possm,
    # possm.yaml); 2 layers, not 4, and 4 latents per chunk (POSSM: 1) so a chunk's spikes of several
    # sub-populations survive the bottleneck. SPINT: 20 ms calibration bins, 8 windows
    # (arXiv 2507.08402; sizes ours). MtM's four schemes and ratios (IBL_foundation_model
    # masker.py). POYO: START tokens, unit dropout min 30 (torch_brain poyo.py).
    "unified_possm": {"dim": 256, "heads": 1, "rnn_dim": 512, "rnn_layers": 2},
    # CPU-sized for tests, the tiny recipe and the first measurements.
    "tiny": {"dim": 64, "heads": 2, "head_dim": 32, "latents_per_chunk": 2, "rnn_dim": 128, "rnn_layers": 1,
             "dropout": 0.1, "id_hidden": 128, "min_units": 20},
}


@dataclass
class UnifiedState:
    """Streaming state: the core's state, its last outputs' decoder keys / values, chunks seen."""

    core: Tensor
    history: Tensor
    filled: int = 0


class Unified(RegisteredCalibration, nn.Module):
    """The unified model.

    Args:
        config: architecture.
        behavior_dims: width of each behaviour key (empty: a self-supervised model).

    Shapes:
        forward(packed or padded per-spike batch, masks=None) -> ``values/<key>`` [B, Q, D] per
        behaviour key, ``behavior`` (the first), and for the scored units ``log_rates`` /
        ``counts`` / ``count_mask`` [N, C] (N scored (window, unit) rows, C chunks).
    """

    def __init__(self, config: UnifiedConfig, *, behavior_dims: dict[str, int]) -> None:
        super().__init__()
        self.config, dim = config, config.dim
        self.id_encoder = IDEncoder(num_bins=config.id_bins, dim=dim, hidden_dim=config.id_hidden)
        self.identity_offset = UnitEmbedding(dim=dim, keys=[], init_std=0.0)  # empty unless recalibrating
        self.token_type_embedding = nn.Embedding(N_TOKEN_TYPES, dim)
        self.latent_embedding = nn.Embedding(config.latents_per_chunk, dim)
        self.task_embedding = KeyedEmbedding(dim=dim, keys=[*behavior_dims, "counts", *SCHEMES])
        for table in (self.token_type_embedding, self.latent_embedding):
            nn.init.normal_(table.weight, std=EMBEDDING_INIT_STD)
        self.rotary = RotaryTimeEmbedding(head_dim=config.head_dim, t_min=config.t_min, t_max=config.t_max)
        self.core, core_dim = make_core(
            config.core, input_dim=config.latents_per_chunk * dim, hidden_dim=config.rnn_dim, layers=config.rnn_layers,
            dropout=config.rnn_dropout, state_dim=config.ssm_state_dim, expand=config.ssm_expand,
        )  # fmt: skip
        self.encoder, self.decoder = (
            CrossAttentionBlock(
                attention=Attention(dim=dim, heads=config.heads, head_dim=config.head_dim, context_dim=width,
                                    rotate_value=True),
                ffn=make_ffn("geglu", dim=dim, hidden_dim=4 * dim, dropout=config.dropout), context_dim=width,
            )  # fmt: skip
            for width in (dim, core_dim)
        )
        self.readout = nn.ModuleDict({key: nn.Linear(dim, width) for key, width in behavior_dims.items()})
        self.count_readout = nn.Linear(dim, 1)
        self._calibration: dict[str, tuple[tuple[str, ...], Tensor]] = {}
        self.count_embedding = nn.Linear(1, dim) if config.token_counts else None

    # ------------------------------------------------------------------ offline pass
    def forward(self, batch: Batch, masks: UnitMasks | None = None) -> dict[str, Tensor]:
        c, chunk, dev = self.config, self.config.chunk, batch.timestamps.device
        n_chunks = max(1, math.ceil(float(batch.duration.max()) / chunk - 1e-6))
        unit_sample = torch.repeat_interleave(torch.arange(batch.batch_size, device=dev), batch.unit_offsets.diff())
        masks = masks if masks is not None else self.draw_masks(batch)
        hidden, scored = _flat(masks.hidden, batch), _flat(masks.scored, batch)  # [sum U] each
        identity = self.identities(batch, hidden)  # [sum U, D]
        if c.heldout_targets:
            heldout = torch.as_tensor(np.asarray(batch.unit_extras["heldout"], bool), device=dev)  # [sum U]
            hidden, scored = hidden | heldout, scored | heldout
        units = batch.unit_index.clamp(min=0)
        keep = batch.mask & (batch.token_type != TokenType.END) & ~hidden[units]  # [*P]
        if self.training and c.unit_dropout:
            keep = keep & unit_dropout_keep(batch, c.min_units)
        rows_of = torch.arange(batch.batch_size, device=dev)[:, None]
        sample = batch.sample_index if batch.packed else rows_of.expand_as(keep)  # window of each token
        tokens = identity[units[keep]] + self.token_type_embedding(batch.token_type[keep])  # [n, D]
        if self.count_embedding is not None:
            token_chunk = chunk_index(batch.timestamps[keep], chunk).clamp(0, n_chunks - 1)  # [n]
            own = self._chunk_counts(batch, n_chunks)[units[keep], token_chunk]  # [n]
            tokens = tokens + self.count_embedding(torch.log1p(own)[:, None])
        grid = chunk_grid(tokens, batch.timestamps[keep], sample[keep], batch.batch_size * n_chunks, n_chunks, chunk)
        latents = self._encode(*grid).view(batch.batch_size, n_chunks, -1)  # [B, C, K * D]
        core_out, _ = self.core(latents)  # [B, C, H]
        ends = (torch.arange(n_chunks, dtype=torch.float64, device=dev) + 1) * chunk  # chunk ends [C]
        outputs = self._behavior(core_out, ends, batch) if self.readout else {}
        rows = scored.nonzero()[:, 0]  # [N] scored units
        if self.training and rows.numel() > c.count_rows:
            rows = rows[torch.randperm(rows.numel(), device=dev)[: c.count_rows]].sort().values
        centres = ends - chunk / 2  # [C]
        see = _visible(n_chunks, c.context_chunks, masks.shift, dev)  # [C, C]
        query = self.task_embedding.embed(["counts"]) + self.task_embedding.embed([masks.scheme]) + identity[rows]
        out = self.decoder(
            query[:, None, :].expand(-1, n_chunks, -1), core_out[unit_sample[rows]], attn_mask=see,
            rotary=self.rotary(centres.float())[None], context_rotary=self.rotary(ends.float())[None],
        )  # [N, C, D]
        step = torch.arange(n_chunks, device=dev)
        chunk_valid = step < torch.ceil(batch.duration / chunk - 1e-6)[:, None]  # [B, C]
        outputs["unit_log_rates"] = self.count_readout(out)[..., 0]  # [N, C]
        outputs["unit_counts"] = self._chunk_counts(batch, n_chunks)[rows]  # [N, C]
        outputs["unit_count_mask"] = chunk_valid[unit_sample[rows]] & (step >= masks.shift)
        outputs["count_weight"] = torch.tensor(c.count_weight)
        return outputs

    def _encode(self, tokens: Tensor, times: Tensor, mask: Tensor) -> Tensor:
        """Per chunk, the latents read its spike tokens: [N, S, D] -> [N, K * D]."""
        k = self.config.latents_per_chunk
        latents = self.latent_embedding.weight[None].expand(tokens.shape[0], -1, -1)  # [N, K, D]
        centre = torch.full((1, k), self.config.chunk / 2, device=tokens.device)
        out = self.encoder(latents, tokens, key_mask=mask, rotary=self.rotary(centre),
                           context_rotary=self.rotary(times.float()))  # fmt: skip
        return out.flatten(1)

    def _behavior(self, core_out: Tensor, ends: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Task queries at ``batch.query_timestamps`` read their chunk and the ones before it."""
        if batch.query_timestamps is None:
            raise ValueError("Unified decodes behaviour at queries: tokenize with SpikeConfig(query='rate')")
        times = batch.query_timestamps  # [B, Q]
        own = chunk_index(times, self.config.chunk).clamp(0, ends.shape[0] - 1)[..., None]  # [B, Q, 1]
        seen = torch.arange(ends.shape[0], device=ends.device)
        mask = (seen <= own) & (seen > own - self.config.context_chunks)  # [B, Q, C]
        outputs = {}
        for key, head in self.readout.items():
            query = self.task_embedding.embed([key])[None].expand(*times.shape, -1)  # [B, Q, D]
            out = self.decoder(query, core_out, attn_mask=mask, rotary=self.rotary(times.float()),
                               context_rotary=self.rotary(ends.float())[None])  # fmt: skip
            outputs[f"values/{key}"] = head(out)
        outputs["behavior"] = outputs[f"values/{self.config.behavior_key}"]
        return outputs

    def _chunk_counts(self, batch: Batch, n_chunks: int) -> Tensor:
        """Spikes of every unit in every chunk [sum U, C] (all units, hidden ones included)."""
        spike = batch.mask & (batch.token_type == TokenType.SPIKE)
        bins = chunk_index(batch.timestamps[spike], self.config.chunk).clamp(0, n_chunks - 1)  # as chunk_grid
        return _bin_counts(batch.unit_index[spike], bins, len(batch.unit_keys), n_chunks)

    def draw_masks(self, batch: Batch) -> UnitMasks:
        """One MtM scheme for the batch (training), or forward prediction of every unit (evaluation)."""
        regions = region_ids(np.split(np.asarray(batch.unit_extras["region"]), batch.unit_offsets[1:-1].tolist()))
        pool = eligible_schemes(self.config.schemes, regions) if self.training else ["causal"]
        scheme = pool[int(torch.randint(len(pool), ()))] if pool else "causal"
        valid, region = _padded_units(batch, regions)
        masks = unit_masks(scheme, valid, region)
        return masks if pool else masks._replace(scored=torch.zeros_like(valid))

    # ------------------------------------------------------------------ identities
    def identities(self, batch: Batch, hidden: Tensor) -> Tensor:
        """Identity [sum U, D] of every unit row: registered calibration, else the session's other
        windows in the batch (never a unit's activity in a window where it is ``hidden``)."""
        c = self.config
        spike = batch.mask & (batch.token_type == TokenType.SPIKE)
        bins = torch.floor(batch.timestamps[spike].double() / c.id_bin).long()
        counts = _bin_counts(batch.unit_index[spike], bins, len(batch.unit_keys), c.id_bins)  # [sum U, T]
        fold, n_folds = session_folds(batch.sessions, self.training)
        vocab: dict[str, int] = {}
        key = torch.tensor([vocab.setdefault(k, len(vocab)) for k in batch.unit_keys], device=counts.device)
        folds = torch.repeat_interleave(torch.tensor(fold, device=counts.device), batch.unit_offsets.diff())
        phi = self.id_encoder.phi(torch.log1p(counts))  # [sum U, h]
        identity = self.id_encoder.psi(pool_other_folds(phi, key, folds, n_folds, contributes=~hidden))
        session_of = np.repeat(batch.sessions, batch.unit_offsets.diff().tolist())  # [sum U]
        registered = [i for i, s in enumerate(session_of) if s in self._calibration]
        if registered:
            table = {}
            for session in {session_of[i] for i in registered}:
                table.update(self._registered(session))
            missing = [batch.unit_keys[i] for i in registered if batch.unit_keys[i] not in table]
            if missing:
                raise KeyError(f"units {missing[:5]} are not among their session's calibrated units; call "
                               "model.calibrate(recording) with the recording the windows come from")  # fmt: skip
            rows = torch.tensor(registered, device=identity.device)
            identity = identity.index_put((rows,), torch.stack([table[batch.unit_keys[i]] for i in registered]))
        return identity + self._offsets(batch.unit_keys)

    def _registered(self, session: str) -> dict[str, Tensor]:
        """Unit key -> identity [D] from the session's registered calibration windows."""
        keys, counts = self._calibration[session]
        return dict(zip(keys, self.id_encoder(counts.to(self.count_readout.weight.device)[None])[0]))

    def _offsets(self, keys: Sequence[str]) -> Tensor:
        """Recalibration mode's learned per-unit offsets [len(keys), D] (zeros for units without a row)."""
        table, weight = self.identity_offset, self.count_readout.weight
        if not len(table):
            return weight.new_zeros(len(keys), table.dim)
        vocab = {k: i for i, k in enumerate(table.keys)}
        rows = torch.tensor([vocab.get(k, -1) for k in keys], dtype=torch.long, device=weight.device)
        return table(rows.clamp(min=0)) * (rows >= 0)[:, None]

    def calibrate(
        self, recording: Recording, trials: Sequence[int] | None = None, *, starts: Sequence[float] | None = None
    ) -> None:
        """Register unlabeled calibration windows ``[t, t + id_window)`` of ``recording`` (spikes only).

        Args:
            trials: trial indices whose starts begin the windows (SPINT's convention, as
                :mod:`spikefm.eval.transfer` calls it); default the first ``calibration_windows``.
            starts: window starts in seconds instead (e.g. for a recording without trials, where
                the default is back-to-back windows from its start).
        """
        c = self.config
        if starts is None and recording.trials is not None and len(recording.trials):
            index = np.arange(min(c.calibration_windows, len(recording.trials))) if trials is None else trials
            starts = recording.trials.start[np.asarray(index, dtype=np.int64)]
        elif starts is None:
            starts = recording.start + np.arange(c.calibration_windows) * c.id_window
        counts = np.stack([recording.bin(c.id_bin, t, t + c.id_window)[: c.id_bins] for t in starts])  # [R, T, U]
        self._calibration[recording.session] = (
            tuple(recording.unit_keys()), torch.as_tensor(counts.transpose(2, 0, 1), dtype=torch.float32))

    def add_session(self, recording: Recording) -> list[str]:
        """Recalibration mode: add a zero identity offset per unit of ``recording``."""
        self.identity_offset.extend(recording.unit_keys())
        return recording.unit_keys()

    def freeze_for_recalibration(self, recording: Recording) -> list[nn.Parameter]:
        """Train only ``recording``'s identity offsets (its IDEncoder identities stay the starting point)."""
        for parameter in self.parameters():
            parameter.requires_grad_(False)
        self.identity_offset.weight.requires_grad_(True)
        self.identity_offset.freeze_except(recording.unit_keys())
        return [self.identity_offset.weight]

    # ------------------------------------------------------------------ streaming
    @torch.no_grad()
    def prepare_stream(self, unit_keys: Sequence[str], session: str, query_offsets: Tensor) -> dict[str, Any]:
        """Per-stream constants (the streaming protocol); the session must be calibrated.

        ``unit_keys`` are the input units (with ``heldout_targets``, leave held-out units out).
        """
        if session not in self._calibration:
            raise KeyError(f"session {session!r} is not calibrated; call model.calibrate(recording) first")
        table = self._registered(session)
        identity = torch.stack([table[k] for k in unit_keys]) + self._offsets(unit_keys)  # KeyError names a key
        if self.count_embedding is not None:  # kv depend on the chunk's counts: computed per step
            kv = {t: identity + self.token_type_embedding.weight[t] for t in (TokenType.SPIKE, TokenType.START)}
        else:
          kv = {t: self.encoder.attention.to_kv(self.encoder.context_norm(identity + self.token_type_embedding.weight[t]))
              for t in (TokenType.SPIKE, TokenType.START)}  # fmt: skip
        ctx, k, chunk = self.config.context_chunks, self.config.latents_per_chunk, self.config.chunk
        key, latent = self.config.behavior_key, self.latent_embedding.weight
        query = self.task_embedding.embed([key]).expand(query_offsets.shape[0], -1)  # [Qc, D]
        return {
            "spike_kv": kv[TokenType.SPIKE], "start_kv": kv[TokenType.START], "latent": latent,
            "latent_qr": rotated_queries(self.encoder, latent, self.rotary(torch.full((k,), chunk / 2))),
            "query": query, "query_qr": rotated_queries(self.decoder, query, self.rotary(query_offsets.float())),
            "slot_rot": self.rotary((torch.arange(ctx, dtype=torch.float64) - (ctx - 2)).float() * chunk),
            "omega": torch.tensor(self.rotary.omega, dtype=torch.float64), "gru": gru_weights(self.core),
            "head": self.readout[key],
        }  # fmt: skip

    def initial_stream_state(self) -> UnifiedState:
        """The state before a stream's first chunk (zeros, empty history)."""
        weight, width = self.count_readout.weight, 2 * self.config.heads * self.config.head_dim
        core = self.core.initial_state(1, weight.device, weight.dtype)
        return UnifiedState(core, weight.new_zeros(self.config.context_chunks, width))

    @torch.no_grad()
    def stream_step(self, units: Tensor, times: Tensor, stream: dict[str, Any], state: UnifiedState):
        """One chunk: :meth:`forward`'s behaviour for it (eval mode). units long [n], times [n] s into the chunk."""
        kv, times = stream["spike_kv"][units], times.float().double()
        if self.count_embedding is not None:
            counts = torch.bincount(units, minlength=stream["spike_kv"].shape[0]).float()  # [U]
            feature = self.count_embedding(torch.log1p(counts)[:, None])  # [U, D]
            kv = kv + feature[units]
        if state.filled == 0:  # a stream's first chunk holds every unit's START token at time 0
            start = stream["start_kv"]
            if self.count_embedding is not None:
                start = start + feature
            kv, times = torch.cat([start, kv]), torch.cat([times.new_zeros(start.shape[0]), times])
        if self.count_embedding is not None:
            kv = self.encoder.attention.to_kv(self.encoder.context_norm(kv))
        angles = times[:, None] * stream["omega"]  # [n, Dh/2]
        rotary = torch.stack((angles.cos(), angles.sin()), dim=-1).float()
        (latent_q, latent_unrot), (query_q, query_unrot) = stream["latent_qr"], stream["query_qr"]
        latent = attend_projected(self.encoder, stream["latent"], latent_q, kv, rotary, latent_unrot, mask=None)
        y, core = step_core(self.core, latent.reshape(1, -1), state.core, stream["gru"])  # [1, H]
        history = torch.cat([state.history[1:], self.decoder.attention.to_kv(self.decoder.context_norm(y))])
        filled = min(state.filled + 1, self.config.context_chunks)
        ctx = self.config.context_chunks
        visible = (torch.arange(ctx, device=y.device) >= ctx - filled)[None]  # [1, ctx] slots holding real chunks
        out = attend_projected(self.decoder, stream["query"], query_q, history, stream["slot_rot"], query_unrot,
                               mask=visible)  # [Qc, D]  # fmt: skip
        return stream["head"](out), UnifiedState(core, history, filled)


# ---------------------------------------------------------------------------- helpers
def _visible(n_chunks: int, ctx: int, shift: int, device: torch.device) -> Tensor:
    """bool [C, C]: a count query of chunk c sees chunks c - shift - ctx + 1 .. c - shift."""
    own = torch.arange(n_chunks, device=device)[:, None] - shift
    seen = torch.arange(n_chunks, device=device)[None]
    return (seen <= own) & (seen > own - ctx)


def _bin_counts(units: Tensor, bins: Tensor, n_units: int, n_bins: int) -> Tensor:
    """Counts [n_units, n_bins] of events (unit, bin); bins outside [0, n_bins) are dropped."""
    inside = (bins >= 0) & (bins < n_bins)
    flat = torch.zeros(n_units * n_bins, device=units.device)
    return flat.index_add(0, units[inside] * n_bins + bins[inside], torch.ones_like(flat[: int(inside.sum())])).view(
        n_units, n_bins
    )


def _padded_units(batch: Batch, regions: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Per-window unit validity [B, U] and region ids [B, U]."""
    n = batch.unit_offsets.diff()
    valid = torch.arange(int(n.max()), device=n.device)[None] < n[:, None]
    region = torch.full(valid.shape, -1, dtype=torch.long)
    region[valid] = torch.as_tensor(np.concatenate(regions), dtype=torch.long)
    return valid, region


def _flat(per_window: Tensor, batch: Batch) -> Tensor:
    """[B, U] per-window unit flags -> [sum U] aligned with ``batch.unit_keys``."""
    n = batch.unit_offsets.diff()
    return per_window[torch.arange(per_window.shape[1], device=n.device)[None] < n[:, None]]


def unified_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Behaviour MSE per key (finite targets at real queries) + ``count_weight`` x masked Poisson NLL."""
    counts = poisson_nll(outputs["unit_log_rates"], outputs["unit_counts"], outputs["unit_count_mask"])
    loss, metrics = outputs["count_weight"] * counts, {"count_nll": counts.detach()}
    for key in (k.split("/", 1)[1] for k in outputs if k.startswith("values/")):
        if key in batch.targets:
            mse = behavior_mse(outputs[f"values/{key}"], batch.targets[key], batch.query_mask)
            loss, metrics[f"{key}/mse"] = loss + mse, mse.detach()
    return loss, metrics


def _sizes(recordings: Sequence[Recording], config: UnifiedConfig) -> dict[str, Any]:
    have = [k for k in config.behavior_keys if any(k in r.behavior for r in recordings)]
    return {"behavior_dims": {k: behavior_width(recordings, k, "Unified") for k in have}}


def _tokenizer(config: UnifiedConfig, **overrides: Any) -> SpikeTokenizer:
    return SpikeTokenizer(SpikeConfig(**{"query": "rate", "query_rate_hz": config.query_rate_hz,
                                         "behavior_keys": config.behavior_keys, **overrides}))  # fmt: skip


SPEC = register(
    ModelSpec(
        name="unified", config_cls=UnifiedConfig, model_cls=Unified, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=unified_objective, sizes_from_data=_sizes, task="decoding", pack=True,
        causal=True,  # POSSM's recurrent core: a chunk's outputs read only spikes up to its end (it streams)
    )
)
