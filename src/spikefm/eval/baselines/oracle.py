"""The oracle row: synthetic data's ground-truth rates scored with the NLB metrics (the ceiling)."""

from __future__ import annotations

import numpy as np

from spikefm.eval.metrics import co_bps, fp_bps, velocity_r2

__all__ = ["oracle_scores"]

def oracle_scores(
    eval_true_rates_heldout: np.ndarray,
    eval_spikes_heldout: np.ndarray,
    *,
    eval_true_rates_forward: np.ndarray | None = None,
    eval_spikes_forward: np.ndarray | None = None,
    train_true_rates: np.ndarray | None = None,
    train_behaviour: np.ndarray | None = None,
    eval_true_rates: np.ndarray | None = None,
    eval_behaviour: np.ndarray | None = None,
) -> dict[str, float]:
    """Scores synthetic data's ground-truth rates with the NLB metrics: the ceiling a model can approach.

    Rates must be expected counts per bin (multiply Hz by the bin size). Every score whose inputs are given is
    computed; co-bps always is.

    Args:
        eval_true_rates_heldout: true rates of held-out neurons, ``[B, T, N_out]``.
        eval_spikes_heldout: their sampled counts.
        eval_true_rates_forward, eval_spikes_forward: forward window, held-in and held-out stacked -> ``fp-bps``.
        train_true_rates, train_behaviour, eval_true_rates, eval_behaviour: all neurons' true rates and behaviour
            on both splits -> ``vel R2``.

    Returns:
        ``{"co-bps": ..., "fp-bps": ..., "vel R2": ...}`` (keys as NLB names them; only those computed).
    """
    scores = {"co-bps": co_bps(eval_true_rates_heldout, eval_spikes_heldout)}
    if (eval_true_rates_forward is None) != (eval_spikes_forward is None):
        raise ValueError("give both eval_true_rates_forward and eval_spikes_forward for fp-bps, or neither")
    if eval_true_rates_forward is not None and eval_spikes_forward is not None:
        scores["fp-bps"] = fp_bps(eval_true_rates_forward, eval_spikes_forward)
    velocity_inputs = (train_true_rates, train_behaviour, eval_true_rates, eval_behaviour)
    given = [v is not None for v in velocity_inputs]
    if any(given) and not all(given):
        raise ValueError("vel R2 needs train_true_rates, train_behaviour, eval_true_rates and eval_behaviour together")
    if all(given):
        scores["vel R2"] = velocity_r2(train_true_rates, train_behaviour, eval_true_rates, eval_behaviour)
    return scores
