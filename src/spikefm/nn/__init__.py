"""Neural-network parts shared by the models: embeddings, attention, backbones, recurrent cores.

Mask convention: boolean, True = real token / may attend. Times are float seconds.
"""

from spikefm.nn.attention import (
    Attention,
    AttentionWeights,
    RMSNorm,
    block_diagonal_mask,
    causal_mask,
    combine_masks,
    local_window_mask,
    pack,
    sequence_ids,
    time_causal_mask,
    unpack,
)
from spikefm.nn.identity import (
    MTM_PROMPTS,
    ContextTokens,
    IDEncoder,
    KeyedEmbedding,
    PromptEmbedding,
    UnitEmbedding,
    unit_key,
    unit_keys,
)
from spikefm.nn.perceiver import PerceiverIO, latent_grid
from spikefm.nn.position import (
    LearnedPositionEmbedding,
    LearnedTimeEmbedding,
    RotaryTimeEmbedding,
    SinusoidalEmbedding,
    apply_rotary,
    invert_rotary,
    logspace_periods,
)
from spikefm.nn.calibration import pool_other_folds, session_folds
from spikefm.nn.chunking import chunk_grid, chunk_index, token_samples
from spikefm.nn.recurrent import (
    CORES,
    GRU,
    RecurrentCore,
    SelectiveSSM,
    gru_weights,
    make_core,
    selective_scan,
    step_core,
)
from spikefm.nn.transformer import (
    FFNS,
    MLP,
    NORMS,
    CrossAttentionBlock,
    GatedMLP,
    SpatioTemporalBlock,
    TorchStyleBlock,
    TransformerBlock,
    TransformerEncoder,
    attend_projected,
    context_kv,
    rotated_queries,
    make_ffn,
    make_norm,
)
from spikefm.nn.unit_readout import IdentityReadout
from spikefm.nn.windowed_core import WindowedTransformer

__all__ = [
    "IdentityReadout",
    # position
    "logspace_periods",
    "SinusoidalEmbedding",
    "LearnedPositionEmbedding",
    "LearnedTimeEmbedding",
    "RotaryTimeEmbedding",
    "apply_rotary",
    "invert_rotary",
    # identity
    "unit_key",
    "unit_keys",
    "KeyedEmbedding",
    "UnitEmbedding",
    "ContextTokens",
    "PromptEmbedding",
    "MTM_PROMPTS",
    "IDEncoder",
    # attention
    "RMSNorm",
    "Attention",
    "AttentionWeights",
    "combine_masks",
    "causal_mask",
    "local_window_mask",
    "time_causal_mask",
    "block_diagonal_mask",
    "sequence_ids",
    "pack",
    "unpack",
    # transformer
    "NORMS",
    "FFNS",
    "make_norm",
    "make_ffn",
    "MLP",
    "GatedMLP",
    "TransformerBlock",
    "CrossAttentionBlock",
    "TransformerEncoder",
    "TorchStyleBlock",
    "attend_projected",
    "context_kv",
    "rotated_queries",
    "SpatioTemporalBlock",
    # perceiver
    "PerceiverIO",
    "latent_grid",
    # recurrent
    "RecurrentCore",
    "GRU",
    "SelectiveSSM",
    "selective_scan",
    "CORES",
    "make_core",
    "WindowedTransformer",
    "gru_weights",
    "step_core",
    # chunking
    "chunk_index",
    "chunk_grid",
    "token_samples",
    # calibration
    "session_folds",
    "pool_other_folds",
]
