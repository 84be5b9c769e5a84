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
   :meth:`stream_step` equals the offline pass (:mod:`spikefm.models.unified_stream`).
4. **Readouts (MtM + POYO+).** A query is a task token (+ a scheme's prompt token) at a time.
   Behaviour: one readout per behaviour key. Spike counts per unit per chunk (Poisson): each unit's
   own linear readout of the counts query's state, its weights computed from its identity plus its
   spike-triggered average of the core state over calibration windows
   (:class:`~spikefm.nn.unit_readout.IdentityReadout`); one MtM scheme per training batch
   (:mod:`spikefm.objectives.unit_masking`) hides units' spikes from the input and scores counts.
"""

from __future__ import annotations

from typing import Any, Callable, Collection, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.models._shared import EMBEDDING_INIT_STD, behavior_width, unit_dropout_keep
from spikefm.models.registry import ModelSpec, register
from spikefm.models.unified_calibration import UnifiedCalibration
from spikefm.models.unified_config import PRESETS, SCHEMES, UnifiedConfig, unified_tokenizer
from spikefm.models.unified_stream import UnifiedState, UnifiedStreaming
from spikefm.nn import IDEncoder, KeyedEmbedding, RotaryTimeEmbedding, UnitEmbedding
from spikefm.nn.calibration import in_batch_identities, triggered_states, with_registered
from spikefm.nn.chunked import (
    chunk_blocks, chunk_ends, context_mask, count_chunks, encode_chunks, query_context_mask, read_chunks,
)  # fmt: skip
from spikefm.nn.chunking import bin_centres, chunk_grid, chunk_index, token_samples
from spikefm.nn.identity_offsets import IdentityOffsets
from spikefm.nn.population import PopulationFrames, recording_frame
from spikefm.nn.recurrent import make_core
from spikefm.nn.unit_readout import IdentityReadout
from spikefm.objectives.multitask import multitask_objective
from spikefm.objectives.unit_counts import binned_spike_counts
from spikefm.objectives.unit_masking import UnitMasks, draw_unit_masks, flat_units
from spikefm.tokenize.base import N_TOKEN_TYPES, Batch, TokenType

__all__ = ["UnifiedConfig", "Unified", "UnifiedState", "unified_objective", "PRESETS"]

class Unified(UnifiedCalibration, UnifiedStreaming, nn.Module):
    """The unified model.

    Args:
        config: architecture.
        behavior_dims: width of each behaviour key (empty: a self-supervised model).
        unit_keys: the ``identity: table`` ablation's training units.
        population: with ``population_pcs``, session -> (unit keys, loadings [U, k]): the training recordings'
            population frames (:func:`~spikefm.nn.population.recording_frame`, made by ``sizes_from_data``).

    Shapes:
        forward(packed or padded per-spike batch, masks=None, calibration=None) -> ``values/<key>``
        [B, Q, D] per behaviour key, ``behavior`` (the first), and for the scored units
        ``unit_log_rates`` / ``unit_counts`` / ``unit_count_mask`` [N, C] (N scored (window, unit)
        rows, C chunks). ``calibration``: bool [B] the windows whose activity in-batch identities may
        pool (default all; to score windows of a session, add some of its training windows to the
        batch and flag only those, as :class:`~spikefm.eval.unit_rate_candidate.UnitRateCandidate`).
    """

    def __init__(self, config: UnifiedConfig, *, behavior_dims: dict[str, int], unit_keys: Sequence[str] = (),
                 population: dict[str, tuple[Sequence[str], Any]] | None = None) -> None:
        super().__init__()
        self.config, dim = config, config.dim
        table = config.identity == "table"  # the ablation: POYO's learned row per unit instead of the IDEncoder
        self.id_encoder = None if table else IDEncoder(num_bins=config.id_bins, dim=dim, hidden_dim=config.id_hidden)
        self.unit_table = UnitEmbedding(dim=dim, keys=list(unit_keys)) if table else None
        self.identity_offset = IdentityOffsets(dim=dim)  # empty unless recalibrating
        self.token_type_embedding = nn.Embedding(N_TOKEN_TYPES, dim)
        self.latent_embedding = nn.Embedding(config.latents_per_chunk, dim)
        self.task_embedding = KeyedEmbedding(dim=dim, keys=[*behavior_dims, "counts", *SCHEMES])
        for table in (self.token_type_embedding, self.latent_embedding):
            nn.init.normal_(table.weight, std=EMBEDDING_INIT_STD)
        self.rotary = RotaryTimeEmbedding(head_dim=config.head_dim, t_min=config.t_min, t_max=config.t_max)
        self.core, core_dim = make_core(
            config.core, input_dim=config.latents_per_chunk * dim, hidden_dim=config.rnn_dim, layers=config.rnn_layers,
            dropout=config.rnn_dropout, state_dim=config.ssm_state_dim, expand=config.ssm_expand,
            window=config.core_window,
        )  # fmt: skip
        self.encoder, self.decoder = chunk_blocks(dim=dim, heads=config.heads, head_dim=config.head_dim,
                                                  core_dim=core_dim, dropout=config.dropout)  # fmt: skip
        self.readout = nn.ModuleDict({key: nn.Linear(dim, width) for key, width in behavior_dims.items()})
        self.count_readout = IdentityReadout(dim, triggered_dim=core_dim + 1 if config.triggered_identity else None)
        self.count_embedding = nn.Linear(1, dim) if config.token_counts else None
        self.input_triggered = None  # identity += MLP(triggered state of a first pass), with triggered_input
        if config.triggered_input:
            self.input_triggered = nn.Sequential(nn.Linear(core_dim + 1, dim), nn.GELU(), nn.Linear(dim, dim))
            nn.init.zeros_(self.input_triggered[-1].weight)  # starts as the one-pass model
            nn.init.zeros_(self.input_triggered[-1].bias)
        self.population = None  # identity += MLP(loadings in the session's population frame), with population_pcs
        if config.population_pcs:
            self.population = PopulationFrames(config.population_pcs)
            for session, (keys, loadings) in (population or {}).items():  # the training recordings' frames
                self.population.register(session, keys, loadings, permanent=True)
            self.population_embedding = nn.Sequential(nn.Linear(config.population_pcs, dim), nn.GELU(),
                                                      nn.Linear(dim, dim))
        self._calibration: dict[str, tuple[tuple[str, ...], Tensor]] = {}

    # ------------------------------------------------------------------ offline pass
    def forward(self, batch: Batch, masks: UnitMasks | None = None, calibration: Tensor | None = None
                ) -> dict[str, Tensor]:
        c, dev = self.config, batch.timestamps.device
        calibration = torch.ones(batch.batch_size, dtype=torch.bool, device=dev) if calibration is None else calibration
        masks = masks if masks is not None else draw_unit_masks(batch, c.schemes, self.training)
        if self.training and masks.scheme == "causal" and masks.shift > 0 and c.forward_chunks > 1:
            masks = masks._replace(shift=int(torch.randint(1, c.forward_chunks + 1, ())))  # horizons 1..forward_chunks
        identity, scored, counts, core_out = self._encode(batch, masks, calibration)
        ends = chunk_ends(counts.shape[1], c.chunk, dev)  # [C]
        outputs = self._behavior(core_out, ends, batch) if self.readout else {}
        return {**outputs, **self._unit_counts(batch, masks, calibration, identity, scored, counts, core_out, ends)}

    def _unit_counts(self, batch: Batch, masks: UnitMasks, calibration: Tensor, identity: Tensor, scored: Tensor,
                     counts: Tensor, core_out: Tensor, ends: Tensor) -> dict[str, Tensor]:
        """Scored units' log-rates per chunk: MtM's factorisation, one state per (window, chunk) read by the counts
        task + scheme prompt, then each unit's own linear readout of it, its weights computed from its identity
        (no per-unit parameter) and, with ``triggered_identity``, its spike-triggered average of the core state."""
        c, dev, n_chunks = self.config, core_out.device, counts.shape[1]
        unit_sample = self._unit_windows(batch)
        rows = scored.nonzero()[:, 0]  # [N] scored (window, unit) rows
        if self.training and rows.numel() > c.count_rows:
            rows = rows[torch.randperm(rows.numel(), device=dev)[: c.count_rows]].sort().values
        triggered = None
        if c.triggered_identity:  # each unit's tuning to the core state, from the other calibration windows
            triggered = triggered_states(counts, core_out, batch.unit_keys, unit_sample, batch.sessions,
                                         self.training, contributes=calibration[unit_sample])  # fmt: skip
            table = lambda s: self._registered_features("features", s)  # noqa: E731
            triggered = self._with_registered(triggered, batch, table, self._features)[rows]
        query = self.task_embedding.embed(["counts"]) + self.task_embedding.embed([masks.scheme])  # [1, D]
        see = context_mask(torch.arange(n_chunks, device=dev), n_chunks, c.context_chunks, masks.shift)  # [C, C]
        out = read_chunks(self.decoder, self.rotary, query[None].expand(batch.batch_size, n_chunks, -1),
                          (ends - c.chunk / 2)[None], core_out, ends[None], see)  # [B, C, D]
        step = torch.arange(n_chunks, device=dev)
        chunk_valid = step < torch.ceil(batch.duration / c.chunk - 1e-6)[:, None]  # [B, C]
        return {"unit_log_rates": self.count_readout(out[unit_sample[rows]], identity[rows], triggered),  # [N, C]
                "unit_counts": counts[rows],  # [N, C]
                "unit_count_mask": chunk_valid[unit_sample[rows]] & (step >= masks.shift),
                "count_weight": torch.tensor(c.count_weight)}

    @staticmethod
    def _with_registered(values: Tensor, batch: Batch, table: Callable[[str], dict[str, Tensor]],
                         registered: Collection[str]) -> Tensor:
        """``values`` [sum U, F] with the rows of the ``registered`` sessions replaced by ``table(session)[key]``."""
        row_sessions = np.repeat(batch.sessions, batch.unit_offsets.diff().tolist()).tolist()  # [sum U]
        tables = {s: table(s) for s in set(row_sessions) if s in registered}
        return with_registered(values, batch.unit_keys, row_sessions, tables)

    def _encode(self, batch: Batch, masks: UnitMasks, calibration: Tensor, first_pass: bool = False
                ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Identities [sum U, D], scored units bool [sum U], counts per chunk [sum U, C] and core outputs [B, C, H].

        With ``triggered_input``, two passes: the first with the IDEncoder identities; each unit's spike-triggered
        average of its core state over the *other* calibration windows (the unit's tuning in the model's own state
        coordinates) then adds an MLP embedding to its identity for the second. ``first_pass``: stop after the first.
        """
        c, dev = self.config, batch.timestamps.device
        n_chunks = count_chunks(float(batch.duration.max()), c.chunk)
        hidden, scored = flat_units(masks.hidden, batch), flat_units(masks.scored, batch)  # [sum U] each
        identity = self.identities(batch, hidden, calibration)  # [sum U, D]
        window = self._unit_windows(batch)  # [sum U]
        contributes = ~hidden & calibration[window]  # rows whose activity calibrates others
        if c.heldout_targets:
            heldout = torch.as_tensor(np.asarray(batch.unit_extras["heldout"], bool), device=dev)  # [sum U]
            hidden, scored = hidden | heldout, scored | heldout
        counts = binned_spike_counts(batch, lambda t: chunk_index(t, c.chunk).clamp(0, n_chunks - 1), n_chunks)
        if self.input_triggered is None or first_pass:
            return identity, scored, counts, self._core_states(batch, identity, hidden, counts)
        # second pass: identities + their tuning to the first pass's state (registered sessions stored theirs at
        # calibrate, so a batch of registered sessions only needs the second pass)
        table = lambda s: self._registered_features("input_features", s)  # noqa: E731
        width = self.input_triggered[0].in_features
        if set(batch.sessions) <= set(self._input_features):
            triggered = self._with_registered(counts.new_zeros(len(counts), width), batch, table, self._input_features)
        else:  # the first pass only measures (detached: no gradient through it; its graph is freed here)
            first = self._core_states(batch, identity, hidden, counts).detach()
            triggered = triggered_states(counts, first, batch.unit_keys, window, batch.sessions, self.training,
                                         contributes=contributes, ridge=c.input_ridge)  # fmt: skip
            triggered = self._with_registered(triggered, batch, table, self._input_features)
        identity = identity + self.input_triggered(triggered)
        return identity, scored, counts, self._core_states(batch, identity, hidden, counts)

    def _core_states(self, batch: Batch, identity: Tensor, hidden: Tensor, counts: Tensor) -> Tensor:
        """Core outputs [B, C, H] from the visible tokens with these identities."""
        c, n_chunks = self.config, counts.shape[1]
        tokens, times, mask = self._chunk_tokens(batch, identity, hidden, counts)  # [B * C, S, D], [B * C, S] x 2
        times = times if c.input_bin is None else bin_centres(times, c.input_bin, c.chunk)  # binned-input ablation
        latents = encode_chunks(self.encoder, self.latent_embedding.weight, self.rotary, tokens, times, mask, c.chunk)
        return self.core(latents.view(batch.batch_size, n_chunks, -1))[0]

    @staticmethod
    def _unit_windows(batch: Batch) -> Tensor:
        """long [sum U]: the window of each unit row."""
        return torch.repeat_interleave(torch.arange(batch.batch_size, device=batch.timestamps.device),
                                       batch.unit_offsets.diff())

    def _chunk_tokens(self, batch: Batch, identity: Tensor, hidden: Tensor, counts: Tensor):
        """The visible tokens (not END, not hidden, not dropped) scattered into per-chunk rows."""
        c, n_chunks = self.config, counts.shape[1]
        units = batch.unit_index.clamp(min=0)
        keep = batch.mask & (batch.token_type != TokenType.END) & ~hidden[units]  # [*P]
        if self.training and c.unit_dropout:
            keep = keep & unit_dropout_keep(batch, c.min_units)
        sample = token_samples(keep, batch.sample_index)  # window of each token
        times = batch.timestamps[keep]
        tokens = identity[units[keep]] + self.token_type_embedding(batch.token_type[keep])  # [n, D]
        if self.count_embedding is not None:  # + the unit's spike count in the token's chunk
            own = counts[units[keep], chunk_index(times, c.chunk).clamp(0, n_chunks - 1)]  # [n]
            tokens = tokens + self.count_embedding(torch.log1p(own)[:, None])
        return chunk_grid(tokens, times, sample[keep], batch.batch_size * n_chunks, n_chunks, c.chunk)

    def _behavior(self, core_out: Tensor, ends: Tensor, batch: Batch) -> dict[str, Tensor]:
        """Task queries at ``batch.query_timestamps`` read their chunk and the ones before it."""
        if batch.query_timestamps is None:
            raise ValueError("Unified decodes behaviour at queries: tokenize with SpikeConfig(query='rate')")
        times = batch.query_timestamps  # [B, Q]
        mask = query_context_mask(times, self.config.chunk, ends.shape[0], self.config.context_chunks)  # [B, Q, C]
        outputs = {}
        for key, head in self.readout.items():
            query = self.task_embedding.embed([key])[None].expand(*times.shape, -1)  # [B, Q, D]
            out = read_chunks(self.decoder, self.rotary, query, times, core_out, ends[None], mask)
            outputs[f"values/{key}"] = head(out)
        outputs["behavior"] = outputs[f"values/{self.config.behavior_key}"]
        return outputs

    # ------------------------------------------------------------------ identities
    def identities(self, batch: Batch, hidden: Tensor, calibration: Tensor) -> Tensor:
        """Identity [sum U, D] of every unit row: registered calibration, else the session's other
        windows in the batch (never a unit's activity in a window where it is ``hidden``); with
        ``identity: table``, each unit's learned row."""
        if self.unit_table is not None:
            return self.unit_table.embed(batch.unit_keys)
        c = self.config
        counts = binned_spike_counts(batch, lambda t: torch.floor(t.double() / c.id_bin).long(), c.id_bins)
        window = self._unit_windows(batch)  # [sum U]
        identity = in_batch_identities(self.id_encoder, counts, batch.unit_keys, window, batch.sessions,
                                       self.training, contributes=~hidden & calibration[window])  # fmt: skip
        identity = self._with_registered(identity, batch, self._registered, self._calibration)
        if self.population is not None:
            identity = identity + self.population_embedding(self.population(batch.unit_keys, batch.sessions,
                                                                            identity.device))
        return identity + self.identity_offset.offsets(batch.unit_keys, identity)

unified_objective = multitask_objective  # behaviour MSE per key + count_weight x masked Poisson NLL


def _sizes(recordings: Sequence[Recording], config: UnifiedConfig) -> dict[str, Any]:
    have = [k for k in config.behavior_keys if any(k in r.behavior for r in recordings)]
    sizes: dict[str, Any] = {"behavior_dims": {k: behavior_width(recordings, k, "Unified") for k in have}}
    if config.identity == "table":  # the lookup-table ablation: one learned row per training unit
        sizes["unit_keys"] = [k for r in recordings for k in r.unit_keys()]
    if config.population_pcs:  # each training recording's fixed frame, from its train trials' unlabeled spikes
        sizes["population"] = {r.session: (r.unit_keys(), recording_frame(r, config.population_pcs,
                                                                          config.population_bin).tolist())
                               for r in recordings}  # fmt: skip
    return sizes


SPEC = register(
    ModelSpec(
        name="unified", config_cls=UnifiedConfig, model_cls=Unified, presets=PRESETS,
        make_tokenizer=unified_tokenizer, objective=unified_objective, sizes_from_data=_sizes, task="decoding",
        pack=True, causal=True,  # POSSM's recurrent core: a chunk's outputs read only spikes up to its end (it streams)
    )
)
