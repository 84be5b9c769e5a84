"""Objectives: losses (plain functions with explicit masks) and masking schemes.

Losses (:mod:`spikefm.objectives.losses`): Poisson NLL (NDT1, NDT2, MtM, NLB),
NDT3's count cross-entropy, POYO's weighted MSE, STNDT's NT-Xent and
Neuroformer's CLIP-style InfoNCE.

Masking (:mod:`spikefm.objectives.masking`): NDT1 random time-step masking, MtM's
causal / neuron / intra-region / inter-region schemes, and NLB forward prediction,
each a seeded transform ``[B, T, N] -> MaskResult(masked_input, mask)``.
"""

from spikefm.objectives.behavior import behavior_mse, single_target
from spikefm.objectives.losses import (
    count_cross_entropy,
    counts_to_classes,
    expected_count_from_logits,
    info_nce,
    mse,
    nt_xent,
    poisson_nll,
    poisson_soft_targets,
)
from spikefm.objectives.unit_masking import UnitMasks, eligible_schemes, region_ids, unit_masks
from spikefm.objectives.masking import (
    MaskingScheme,
    MaskResult,
    apply_scheme,
    causal_mask,
    forward_mask,
    inter_region_mask,
    intra_region_mask,
    n_selected,
    neuron_mask,
    random_token_mask,
    sample_scheme,
)

__all__ = [
    "poisson_nll",
    "count_cross_entropy",
    "counts_to_classes",
    "expected_count_from_logits",
    "poisson_soft_targets",
    "mse",
    "nt_xent",
    "info_nce",
    "behavior_mse",
    "single_target",
    "MaskResult",
    "MaskingScheme",
    "random_token_mask",
    "causal_mask",
    "forward_mask",
    "neuron_mask",
    "intra_region_mask",
    "inter_region_mask",
    "sample_scheme",
    "apply_scheme",
    "n_selected",
    "UnitMasks",
    "unit_masks",
    "eligible_schemes",
    "region_ids",
]
