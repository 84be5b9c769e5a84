"""The unified model's configuration and presets (the model: :mod:`spikefm.models.unified`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from spikefm.nn.chunking import bins_per_chunk
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer

__all__ = ["SCHEMES", "UnifiedConfig", "PRESETS", "unified_tokenizer"]

SCHEMES = ("neuron", "causal", "intra_region", "inter_region")


@dataclass
class UnifiedConfig:
    """Unified architecture (sources of each default in PRESETS and docs/models/unified.md).

    Attributes:
        dim, heads, head_dim: token width and the cross-attentions' shape.
        latents_per_chunk, chunk, context_chunks: POSSM's encoder and read-out window.
        core, rnn_dim, rnn_layers, rnn_dropout, ssm_state_dim, ssm_expand: the recurrent core (``"gru"``,
            ``"ssm"``, or the ablation ``"transformer"``: a windowed causal transformer, ``core_window``).
        dropout: feed-forward dropout. t_min, t_max: rotary period range (s); ``t_min`` 1e-2, not POSSM's
            1e-4 (chosen on validation, PRESETS).
        id_bin, id_window, id_hidden: IDEncoder bins (s), calibration window (s), MLP width.
        calibration_windows: windows :meth:`Unified.calibrate` takes when none are named.
        schemes: MtM schemes alternated per training batch (empty: behaviour only).
        forward_chunks: the causal scheme predicts each chunk from the state this many chunks before it, drawn
            per training batch from 1..forward_chunks (1: next-chunk prediction only; 4 at 50 ms chunks covers
            NLB's 200 ms forward-prediction window, which fp-bps scores at horizons 1..4).
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
        identity: ``"idencoder"`` (SPINT's, from unlabeled activity) or ``"table"`` (the ablation: POYO's
            learned row per training unit; a new session then needs gradient recalibration).
        triggered_identity: add to a scored unit's readout identity an MLP of its spike-triggered average
            of the core state over the batch's other calibration windows
            (:func:`~spikefm.nn.calibration.triggered_states`).
        triggered_input: two passes: each unit's *input* identity also gets an MLP embedding of its spike-triggered
            average of the first pass's core state over the other calibration windows (its tuning in the model's
            own state coordinates, which a new session's units get from unlabeled calibration data).
        input_ridge: whiten the first pass's triggered states (the input identities'): the state covariance over
            the pooled calibration windows, plus ``input_ridge`` times its mean eigenvalue, is inverted and applied,
            so the feature estimates the unit's readout of the state rather than that readout times the covariance
            of the states the calibration windows happened to visit (:func:`~spikefm.nn.calibration.triggered_states`).
            None: the plain average (the recipe until 2026-12-05). Used only with ``triggered_input``. 0.1 is the
            recipe since the thirty-fourth sitting (docs/results/protocol.md): chosen on transfer worlds 0-1's val
            trials, it raised zero-shot decode R2 from 32 unlabeled trials on fresh worlds (thirty-third sitting,
            +0.130 [+0.018, +0.258]) and was level with the plain average within a session (thirty-fourth: decode
            R2 -0.017 [-0.047, +0.013], co-bps +0.009 [-0.007, +0.025]).
        input_bin: the binned-input ablation: each spike's time becomes the centre of its bin of this
            many seconds (must divide ``chunk``), so the input carries counts per unit per bin, not spike
            times. None: exact times (POYO).
        core_window: steps (chunks) the ``core: transformer`` ablation reads (its own and the ones before).
        population_pcs, population_bin: add to each unit's input identity an MLP embedding of its loadings on the
            top ``population_pcs`` principal components of its session's counts in ``population_bin`` bins, read
            through one fixed frame per session (:mod:`spikefm.nn.population`): a training recording's from its
            train trials' unlabeled spikes, a new session's from its calibration windows. It tells units apart by
            how they co-vary with their population, which a unit's own activity does not show when calibration
            windows are not aligned to a repeated task (M1's continuous reaching). 0: off (the recipe).
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
    t_min: float = 1e-2
    t_max: float = 10.0
    id_bin: float = 0.02
    id_window: float = 1.0
    id_hidden: int = 256
    calibration_windows: int = 8
    schemes: tuple[str, ...] = SCHEMES
    forward_chunks: int = 1
    count_weight: float = 1.0
    count_rows: int = 256
    heldout_targets: bool = True
    unit_dropout: bool = True
    min_units: int = 30
    behavior_keys: tuple[str, ...] = ("hand_vel",)
    query_rate_hz: float = 100.0
    token_counts: bool = False
    identity: str = "idencoder"
    triggered_identity: bool = True
    triggered_input: bool = True
    input_ridge: float | None = 0.1
    input_bin: float | None = None
    core_window: int = 20
    population_pcs: int = 0
    population_bin: float = 0.05

    def __post_init__(self) -> None:
        self.schemes, self.behavior_keys = tuple(self.schemes), tuple(self.behavior_keys)
        if self.identity not in ("idencoder", "table"):
            raise ValueError(f"UnifiedConfig.identity: {self.identity!r}; choose 'idencoder' or 'table'")
        unknown = set(self.schemes) - set(SCHEMES)
        if unknown:
            raise ValueError(f"UnifiedConfig.schemes: unknown {sorted(unknown)}; choose from {SCHEMES}")
        if min(self.dim, self.heads, self.head_dim, self.latents_per_chunk, self.context_chunks, self.rnn_layers,
               self.forward_chunks) < 1:
            raise ValueError("UnifiedConfig: widths, heads, latents, context_chunks, rnn_layers and forward_chunks "
                             "must be >= 1")
        if not (self.chunk > 0 and 0 < self.id_bin <= self.id_window and self.query_rate_hz > 0):
            raise ValueError("UnifiedConfig needs chunk > 0, 0 < id_bin <= id_window and query_rate_hz > 0")
        if self.triggered_input and self.identity == "table":
            raise ValueError("UnifiedConfig.triggered_input refines IDEncoder identities from calibration windows; the "
                             "identity: table ablation has none")
        if self.input_ridge is not None and not self.input_ridge > 0:
            raise ValueError(f"UnifiedConfig.input_ridge must be > 0 or None, got {self.input_ridge}")
        if self.population_pcs < 0 or not self.population_bin > 0:
            raise ValueError("UnifiedConfig: population_pcs must be >= 0 and population_bin > 0")
        if self.population_pcs and self.identity == "table":
            raise ValueError("UnifiedConfig.population_pcs adds to IDEncoder identities; the identity: table "
                             "ablation has none")
        if self.input_bin is not None:
            bins_per_chunk(self.input_bin, self.chunk)  # raises unless input_bin divides chunk

    @property
    def behavior_key(self) -> str:
        """The main behaviour series (``outputs["behavior"]``)."""
        if not self.behavior_keys:
            raise ValueError("this unified model decodes no behaviour (behavior_keys is empty): it was trained on "
                             "the masking schemes alone; score its counts (co-bps, forward prediction) instead")
        return self.behavior_keys[0]

    @property
    def id_bins(self) -> int:
        return int(math.ceil(self.id_window / self.id_bin - 1e-9))


PRESETS: dict[str, dict[str, Any]] = {
    # Published sizes, each part from its parent: POSSM-GRU 9M's chunk 0.05 s, head_dim 64,
    # context 3, dim 256, GRU x 512, dropout 0.2, rotary t_max 10 s (torch_brain branch possm,
    # possm.yaml); 2 layers, not 4, and 4 latents per chunk (POSSM: 1) so a chunk's spikes of several
    # sub-populations survive the bottleneck. Rotary t_min 1e-2 s, not POSSM's 1e-4: periods below ~10 ms
    # turn a spike's rotated value by a phase that is noise for Poisson-like spiking; on lorenz-0's
    # validation trials (seed 0, 600 steps) t_min 1e-2 gave decode R2 0.773 vs 0.691 and co-bps 0.148 vs
    # 0.120 (binning spike times to their 50 ms chunk gave 0.780 / 0.141; 2026-12-04). SPINT: 20 ms calibration bins, 8 windows
    # (arXiv 2507.08402; sizes ours). Two passes (triggered_input, ours): on transfer world 0's val trials (3 seeds,
    # zero-shot) new-session decode R2 0.753 / 0.666 at k = 8 / 32 vs 0.641 / 0.624 in one pass, pretraining
    # session 0.847 / 0.856 vs 0.830 / 0.823 (benchmarks/unified_identity_passes.py; 2026-12-05). MtM's four schemes and ratios (IBL_foundation_model
    # masker.py). POYO: START tokens, unit dropout min 30 (torch_brain poyo.py).
    "unified_possm": {"dim": 256, "heads": 1, "rnn_dim": 512, "rnn_layers": 2},
    # CPU-sized for tests, the tiny recipe and the first measurements.
    "tiny": {"dim": 64, "heads": 2, "head_dim": 32, "latents_per_chunk": 2, "rnn_dim": 128, "rnn_layers": 1,
             "dropout": 0.1, "id_hidden": 128, "min_units": 20},
}


def unified_tokenizer(config: UnifiedConfig, **overrides: Any) -> SpikeTokenizer:
    """The model's spike tokenizer: behaviour queries at ``query_rate_hz`` (``overrides`` set other fields)."""
    return SpikeTokenizer(SpikeConfig(**{"query": "rate", "query_rate_hz": config.query_rate_hz,
                                         "behavior_keys": config.behavior_keys, **overrides}))  # fmt: skip
