"""Tokenizers: ``Window -> Tokens`` for every published spike tokenization, and ``collate``.

=====================  ==========================  =============================================
tokenizer              models                      one token is
=====================  ==========================  =============================================
BinnedTokenizer        NDT1, STNDT, MtM, NEDS      a time bin's population count vector
PatchTokenizer         NDT2, NDT3                  a (bins x 32 units) patch of counts
SpikeTokenizer         POYO, POYO+, POSSM          one spike (unit, exact time)
NeuronTokenizer        STNDT spatial, SPINT        one unit's binned series
EventTokenizer         Neuroformer                 one spike as (neuron-id, dt) tokens
=====================  ==========================  =============================================
"""

from spikefm.tokenize.base import (
    N_TOKEN_TYPES,
    Batch,
    QueryConfig,
    Tokenizer,
    Tokens,
    TokenType,
    collate,
    make_queries,
)
from spikefm.tokenize.binned import BinnedConfig, BinnedTokenizer, PatchConfig, PatchTokenizer, bin_window
from spikefm.tokenize.events import EventConfig, EventTokenizer
from spikefm.tokenize.neurons import NeuronConfig, NeuronTokenizer
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer
from spikefm.tokenize.summary import default_tokenizers, tokenizer_table

__all__ = [
    "N_TOKEN_TYPES",
    "Batch",
    "BinnedConfig",
    "BinnedTokenizer",
    "EventConfig",
    "EventTokenizer",
    "NeuronConfig",
    "NeuronTokenizer",
    "PatchConfig",
    "PatchTokenizer",
    "QueryConfig",
    "SpikeConfig",
    "SpikeTokenizer",
    "TokenType",
    "Tokenizer",
    "Tokens",
    "bin_window",
    "collate",
    "default_tokenizers",
    "make_queries",
    "tokenizer_table",
]
