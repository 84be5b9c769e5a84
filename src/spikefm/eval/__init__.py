"""Evaluation: NLB metrics (:mod:`~spikefm.eval.metrics`) and the baselines every score table carries
(:mod:`~spikefm.eval.baselines`).

Figures live in :mod:`spikefm.eval.plots`; import it directly (it pulls in matplotlib, which scoring does not need).
"""

from spikefm.eval.baselines import (
    PoissonGLM,
    RidgeDecoder,
    SmoothingBaseline,
    gaussian_window,
    lagged_features,
    oracle_scores,
    smooth_spikes,
)
from spikefm.eval.metrics import (
    bits_per_spike,
    bits_per_spike_per_neuron,
    co_bps,
    decoding_r2,
    fp_bps,
    poisson_nll_total,
    psth_r2,
    r2_score,
    ridge_cv,
    smooth_psth,
    stack_heldin_heldout,
    velocity_r2,
)

__all__ = [
    "PoissonGLM",
    "RidgeDecoder",
    "SmoothingBaseline",
    "bits_per_spike",
    "bits_per_spike_per_neuron",
    "co_bps",
    "decoding_r2",
    "fp_bps",
    "gaussian_window",
    "lagged_features",
    "oracle_scores",
    "poisson_nll_total",
    "psth_r2",
    "r2_score",
    "ridge_cv",
    "smooth_psth",
    "smooth_spikes",
    "stack_heldin_heldout",
    "velocity_r2",
]
