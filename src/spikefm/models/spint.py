"""SPINT (Le et al. 2025): a permutation-invariant decoder over unordered neuron tokens.

Each unit of the window is one token holding its binned series (neuron-as-token). A unit has
no fixed id: its identity embedding is *inferred* by an :class:`~spikefm.nn.IDEncoder` from the
same unit's activity in a few unlabeled calibration trials of its session (a shared MLP per
trial, mean over trials, a second MLP), and added to the token. Behaviour queries (one learned
query per output bin) cross-attend to the unit tokens and a linear read-out gives the behaviour.
Nothing in the network is indexed by unit or session, so the output is invariant to the order of
the units and a new session needs no new parameters: a forward pass of the IDEncoder over its
calibration trials ("gradient-free few-shot adaptation") is all it takes. Dynamic channel dropout
hides a random fraction of units, drawn anew for every training window, so the decoder learns to
live with populations whose composition shifts.

How calibration activity reaches the model (our design; the paper publishes no code):

* **Registered calibration.** ``model.calibrate(recording, trials)`` bins the given trials of the
  session (unlabeled: only spikes are read) and stores the counts ``[U, R, T]`` keyed by
  ``"session/unit"`` in the model (they travel in the state dict). Every forward pass recomputes
  the identities from them, so they stay in step with a model that is being fine-tuned.
* **In-batch calibration (training).** For a session that was never calibrated, a window is
  calibrated on the batch's *other* windows of its session, so calibration data never comes from
  the decoded window. In training the session's windows are split alternately into two folds,
  each calibrated on the other (cross-fitting), so a window's identity does not depend on its own
  activity, as at test time; in evaluation every other window is pooled (leave-one-out). A window
  alone of its session gets the IDEncoder's empty-calibration identity ``psi(0)``. This is how
  ``spikefm train`` runs (trial windows shuffled across sessions; larger batches give more
  calibration trials), with no extra data path.

Evaluation registers a fixed calibration set of the scored session's non-test data
(:func:`spikefm.eval.evaluate.predict` calibrates on the first ``calibration_trials`` train-split
trials; :mod:`spikefm.eval.transfer` on the first ``k``), so a score does not depend on which
windows share a batch; in-batch calibration is for training (and the validation loss) only.

Source: arXiv 2507.08402 (OpenReview XjayhGBraW); no public code. The IDEncoder form (per-trial
MLP, mean over trials, MLP) follows the paper's description; sizes below are ours (see PRESETS).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.data.recording import DataError, Recording
from spikefm.models._shared import RegisteredCalibration, behavior_width
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.attention import Attention
from spikefm.nn.calibration import pool_other_folds, session_folds
from spikefm.nn.identity import IDEncoder
from spikefm.nn.position import LearnedPositionEmbedding
from spikefm.nn.transformer import CrossAttentionBlock, TransformerBlock, make_ffn
from spikefm.objectives.behavior import behavior_mse, single_target
from spikefm.tokenize.base import Batch
from spikefm.tokenize.neurons import NeuronConfig, NeuronTokenizer

__all__ = ["SPINTConfig", "SPINT", "spint_objective", "calibration_counts", "PRESETS"]


@dataclass
class SPINTConfig:
    """SPINT architecture.

    Attributes:
        dim: token width.
        heads: attention heads (unit self-attention and query cross-attention).
        unit_layers: self-attention blocks over the unordered unit tokens (no positions, so
            permutation-equivariant); 0 = none.
        cross_layers: cross-attention blocks, behaviour queries <- unit tokens.
        ffn_mult: feed-forward width multiple.
        id_hidden: IDEncoder MLP width.
        dropout: residual dropout.
        channel_dropout: dynamic channel dropout; each training window hides a fraction
            ``p ~ U(0, channel_dropout)`` of its units (at least one unit stays).
        bin_size: seconds per bin.
        window: seconds per decoded window; calibration trials are cut to the same length.
        calibration_trials: trials ``calibrate`` takes when none are named.
        behavior_key: behaviour series decoded.
    """

    dim: int = 128
    heads: int = 4
    unit_layers: int = 1
    cross_layers: int = 2
    ffn_mult: int = 4
    id_hidden: int = 256
    dropout: float = 0.1
    channel_dropout: float = 0.5
    bin_size: float = 0.02
    window: float = 1.0
    calibration_trials: int = 8
    behavior_key: str = "hand_vel"

    def __post_init__(self) -> None:
        if min(self.dim, self.heads, self.cross_layers, self.ffn_mult, self.id_hidden, self.calibration_trials) < 1:
            raise ValueError(
                "SPINTConfig: dim, heads, cross_layers, ffn_mult, id_hidden and calibration_trials must be >= 1"
            )
        if self.unit_layers < 0:
            raise ValueError(f"SPINTConfig.unit_layers must be >= 0, got {self.unit_layers}")
        if not 0.0 <= self.channel_dropout < 1.0:
            raise ValueError(f"SPINTConfig.channel_dropout must be in [0, 1), got {self.channel_dropout}")
        if not (self.bin_size > 0 and self.window >= self.bin_size):
            raise ValueError(
                f"SPINTConfig needs bin_size > 0 and window >= bin_size, got {self.bin_size}, {self.window}"
            )

    @property
    def num_bins(self) -> int:
        """Bins per window (and per calibration trial)."""
        return int(np.ceil(self.window / self.bin_size - 1e-9))


PRESETS: dict[str, dict[str, Any]] = {
    # FALCON-style decoding (MODELS.md, FALCON): 20 ms bins. The paper shows M1 decoding with a
    # single calibration trial and adapts with "a small amount" of unlabeled data; we default to 8.
    # Widths, depths and the dropout ceiling are not public (no code): they are our choices.
    "falcon": {},
    # CPU-sized for tests, the demo and the transfer protocol.
    "tiny": {"dim": 64, "heads": 4, "unit_layers": 1, "cross_layers": 2, "id_hidden": 128, "dropout": 0.1},
}


def calibration_counts(recording: Recording, trials: Sequence[int], *, bin_size: float, window: float) -> np.ndarray:
    """Binned calibration trials of one recording, int64 [U, R, T] (units, trials, bins).

    Each trial ``i`` is cut to ``[start_i, start_i + window)``; only spikes are read.
    """
    if recording.trials is None or len(recording.trials) == 0:
        raise DataError(f"{recording.source or recording.session}: no trials table; SPINT calibrates on trials")
    index = np.asarray(list(trials), dtype=np.int64)
    if index.size == 0:
        raise ValueError("calibration needs at least one trial")
    if index.min() < 0 or index.max() >= len(recording.trials):
        raise IndexError(f"calibration trial index out of range for {len(recording.trials)} trials: {index.tolist()}")
    starts = recording.trials.start[index]
    if np.any(starts + window > recording.end + 1e-9):
        raise DataError(f"{recording.session}: a calibration trial window of {window} s runs past the recording's end")
    counts = np.stack([recording.bin(bin_size, t0, t0 + window) for t0 in starts])  # [R, T, U]
    return np.ascontiguousarray(counts.transpose(2, 0, 1))  # [U, R, T]


class SPINT(RegisteredCalibration, nn.Module):
    """SPINT decoder.

    Args:
        config: architecture.
        behavior_dim: width of the decoded behaviour.

    Shapes:
        forward(batch of neuron tokens, ``values`` [B, U, T] counts, queries at bin centres)
        -> ``behavior`` [B, Q, behavior_dim] at ``batch.query_timestamps``.
    """

    def __init__(self, config: SPINTConfig, *, behavior_dim: int) -> None:
        super().__init__()
        self.config, self.behavior_dim = config, behavior_dim
        dim, bins = config.dim, config.num_bins
        self.id_encoder = IDEncoder(num_bins=bins, dim=dim, hidden_dim=config.id_hidden)
        self.activity = nn.Linear(bins, dim)

        def ffn() -> nn.Module:
            return make_ffn("gelu", dim=dim, hidden_dim=config.ffn_mult * dim, dropout=config.dropout)

        self.unit_blocks = nn.ModuleList(
            TransformerBlock(attention=Attention(dim=dim, heads=config.heads), ffn=ffn(), dropout=config.dropout)
            for _ in range(config.unit_layers)
        )
        self.query_embedding = LearnedPositionEmbedding(num_positions=bins, dim=dim)
        self.cross_blocks = nn.ModuleList(
            CrossAttentionBlock(attention=Attention(dim=dim, heads=config.heads), ffn=ffn(), dropout=config.dropout)
            for _ in range(config.cross_layers)
        )
        self.norm = nn.LayerNorm(dim)
        self.readout = nn.Linear(dim, behavior_dim)
        self._calibration: dict[str, tuple[tuple[str, ...], Tensor]] = {}

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        if batch.query_timestamps is None:
            raise ValueError("SPINT needs output queries: tokenize with NeuronConfig(query='bins')")
        counts = batch.values.float()  # [B, U, T]
        if counts.ndim != 3 or counts.shape[-1] != self.config.num_bins:
            raise ValueError(
                f"SPINT decodes windows of {self.config.window} s = {self.config.num_bins} bins of "
                f"{self.config.bin_size} s; got neuron tokens of shape {tuple(counts.shape)} "
                "(set data.window to the model's window and use its tokenizer)"
            )
        units = batch.mask  # [B, U]
        tokens = self.activity(torch.log1p(counts)) + self.identities(batch)  # [B, U, D]
        keep = self._channel_dropout(units) if self.training else units
        for block in self.unit_blocks:
            tokens = block(tokens, key_mask=keep)
        bins = torch.floor(batch.query_timestamps.double() / self.config.bin_size).long()  # [B, Q]
        queries = self.query_embedding(bins.clamp(0, self.config.num_bins - 1))  # [B, Q, D]
        for block in self.cross_blocks:
            queries = block(queries, tokens, key_mask=keep)
        return {"behavior": self.readout(self.norm(queries))}  # [B, Q, behavior_dim]

    def _channel_dropout(self, units: Tensor) -> Tensor:
        """Hide a fraction p ~ U(0, channel_dropout) of each window's units; keep at least one."""
        if self.config.channel_dropout == 0:
            return units
        p = torch.rand(units.shape[0], 1, device=units.device) * self.config.channel_dropout  # [B, 1]
        keep = units & (torch.rand(units.shape, device=units.device) >= p)  # [B, U]
        empty = ~keep.any(1) & units.any(1)
        if empty.any():  # give a window that lost every unit its first real unit back
            first = units.float().argmax(1)
            keep[empty, first[empty]] = True
        return keep

    # ------------------------------------------------------------------ identities
    def identities(self, batch: Batch) -> Tensor:
        """Identity embedding of every unit token [B, U, D]: from registered calibration trials
        where the session has them, else from other windows of the session in the batch."""
        keys = _token_keys(batch)  # [B][U] keys (None on padding)
        registered = [b for b, session in enumerate(batch.sessions) if session in self._calibration]
        if len(registered) < batch.batch_size:
            identity = self._cross_fitted(batch, keys)  # [B, U, D]
        else:
            identity = self.readout.weight.new_zeros(*batch.mask.shape, self.config.dim)  # every row replaced below
        if not registered:
            return identity
        rows, replacement = [], []
        for session in sorted({batch.sessions[b] for b in registered}):
            table = self._registered_identities(session)  # key -> [D]
            for b in (b for b in registered if batch.sessions[b] == session):
                for u, key in enumerate(keys[b]):
                    if key is None:
                        continue
                    if key not in table:
                        raise KeyError(
                            f"unit {key!r} is not among the calibrated units of session {session!r}; "
                            "call model.calibrate(recording, trials) with the recording the windows come from"
                        )
                    rows.append((b, u))
                    replacement.append(table[key])
        index = torch.tensor(rows, dtype=torch.long, device=identity.device)
        identity = identity.index_put((index[:, 0], index[:, 1]), torch.stack(replacement))
        return identity

    def _cross_fitted(self, batch: Batch, keys: list[list[str | None]]) -> Tensor:
        """In-batch calibration from the session's other windows in the batch.

        Training: two-fold cross-fitting. A session's windows are split alternately into two
        folds and each fold's identities pool the *other* fold, so a window's identity does not
        depend on its own activity (a leave-one-out mean would, through the missing term, and the
        network could read the window's activity back from it; calibration at test time never
        carries that). Evaluation: leave-one-out, every other window of the session (the network
        is not trained on it there, and more calibration trials give steadier identities).
        """
        counts = batch.values.float()  # [B, U, T]
        encoder = self.id_encoder
        per_trial = encoder.phi(torch.log1p(counts.clamp_min(0)))  # [B, U, h] one calibration "trial" per window
        fold, n_folds = session_folds(batch.sessions, self.training)
        vocab: dict[str, int] = {}
        ids = torch.tensor(
            [[-1 if k is None else vocab.setdefault(k, len(vocab)) for k in row] for row in keys],
            dtype=torch.long, device=counts.device,
        ).view(counts.shape[:2])  # [B, U]
        folds = torch.tensor(fold, dtype=torch.long, device=counts.device)[:, None].expand_as(ids)  # [B, U]
        valid = ids >= 0
        pooled_valid = pool_other_folds(per_trial[valid], ids[valid], folds[valid], n_folds)  # [N, h]
        pooled = per_trial.new_zeros(per_trial.shape).index_put(valid.nonzero(as_tuple=True), pooled_valid)
        return encoder.psi(pooled) * valid[..., None].to(pooled.dtype)  # [B, U, D]

    def _registered_identities(self, session: str) -> dict[str, Tensor]:
        keys, counts = self._calibration[session]
        device = self.readout.weight.device
        identity = self.id_encoder(counts.to(device)[None])[0]  # [U, D]
        return dict(zip(keys, identity))

    # ------------------------------------------------------------------ calibration
    def calibrate(self, recording: Recording, trials: Sequence[int] | None = None) -> Tensor:
        """Register unlabeled calibration trials of ``recording``'s session (replacing earlier ones).

        Args:
            recording: the session; only its spikes and trial starts are read.
            trials: trial indices (rows of ``recording.trials``); default the first
                ``config.calibration_trials`` trials of the ``train`` split (of all trials when the
                trials have no split column).

        Returns:
            The units' identity embeddings [U, D] (computed without gradient), in unit-table order.
        """
        if trials is None:
            trials = _default_trials(recording, self.config.calibration_trials)
        counts = calibration_counts(recording, trials, bin_size=self.config.bin_size, window=self.config.window)
        self._calibration[recording.session] = (
            tuple(recording.unit_keys()), torch.from_numpy(counts).to(self.readout.weight.device),
        )
        with torch.no_grad():
            table = self._registered_identities(recording.session)
            return torch.stack([table[k] for k in recording.unit_keys()])


def _token_keys(batch: Batch) -> list[list[str | None]]:
    index = batch.unit_index.tolist()  # [B][U]
    mask = batch.mask.tolist()
    return [[batch.unit_keys[i] if m and i >= 0 else None for i, m in zip(row, mrow)] for row, mrow in zip(index, mask)]


def _default_trials(recording: Recording, n: int) -> list[int]:
    if recording.trials is None or len(recording.trials) == 0:
        raise DataError(f"{recording.source or recording.session}: no trials table; SPINT calibrates on trials")
    rows = np.arange(len(recording.trials))
    if "split" in recording.trials.columns:  # never fall back to other splits: they may hold the scored trials
        rows = rows[recording.trials.columns["split"].astype(str) == "train"]
        if rows.size == 0:
            raise DataError(f"{recording.source or recording.session}: no train-split trials to calibrate on; "
                            "name the calibration trials")
    return rows[:n].tolist()


def spint_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """MSE between decoded and true behaviour at the valid queries."""
    target = single_target(batch, "SPINT")  # [B, Q, D]
    return behavior_mse(outputs["behavior"], target, batch.query_mask), {}


def _sizes(recordings: Sequence[Recording], config: SPINTConfig) -> dict[str, Any]:
    return {"behavior_dim": behavior_width(recordings, config.behavior_key, "SPINT")}


def _tokenizer(config: SPINTConfig, **overrides: Any) -> NeuronTokenizer:
    return NeuronTokenizer(
        NeuronConfig(**{"bin_size": config.bin_size, "query": "bins", "behavior_keys": (config.behavior_key,),
                        **overrides})
    )


SPEC = register(
    ModelSpec(
        name="spint", config_cls=SPINTConfig, model_cls=SPINT, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=spint_objective, sizes_from_data=_sizes, task="decoding", pack=False,
        causal=False,  # each unit token holds its whole window's series
    )
)
