"""POYO (Azabou et al. 2023): one token per spike, PerceiverIO with rotary time, behaviour queries.

Each spike is a token = its unit's embedding (a growable vocabulary keyed ``"session/unit"``)
+ a token-type embedding (spike / unit START / unit END). Learned latents, repeated every
``latent_step`` seconds, cross-attend to the spikes with rotary embeddings of the exact spike
times; ``depth`` self-attention layers process them; output queries (the session's embedding
at each query time) cross-attend to the latents and a linear read-out gives the behaviour.
Trained with MSE on the behaviour, with unit-dropout augmentation.

For a new session only new unit and session rows are learned (:meth:`POYO.add_session` +
:meth:`POYO.freeze_for_recalibration`), as POYO recalibrates.

Source: neuro-galaxy/torch_brain @0512ee0 ``torch_brain/models/poyo.py``,
``nn/rotary_attention.py``, ``nn/position_embeddings.py``; paper arXiv 2310.16046.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from spikefm.models._shared import (
    EMBEDDING_INIT_STD,
    UnitRecalibration,
    select_packed,
    spike_decoder_sizes,
    unit_dropout_keep,
)
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.dropout import FastDropout
from spikefm.nn.identity import KeyedEmbedding, UnitEmbedding
from spikefm.nn.perceiver import PerceiverIO, latent_grid
from spikefm.objectives.behavior import behavior_mse, single_target
from spikefm.tokenize.base import N_TOKEN_TYPES, Batch
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer

__all__ = ["POYOConfig", "POYO", "poyo_objective", "spike_decoder_sizes", "EMBEDDING_INIT_STD", "PRESETS"]


@dataclass
class POYOConfig:
    """POYO architecture.

    Attributes:
        dim: token width.
        depth: latent self-attention layers.
        cross_heads, self_heads, head_dim: attention shapes.
        latents_per_step: learned latents per ``latent_step``.
        latent_step: seconds between latent groups.
        dropout: feed-forward dropout (torch_brain ``ffn_dropout``).
        lin_dropout: dropout before the read-out.
        unit_dropout: drop a random subset of units per training window (augmentation).
        min_units: keep at least this many units when dropping (torch_brain ``UnitDropout``).
        behavior_key: behaviour series read out.
        query_rate_hz: output query rate.
    """

    dim: int = 128
    depth: int = 24
    cross_heads: int = 4
    self_heads: int = 8
    head_dim: int = 64
    latents_per_step: int = 32
    latent_step: float = 0.125
    dropout: float = 0.2
    lin_dropout: float = 0.4
    unit_dropout: bool = True
    min_units: int = 30
    behavior_key: str = "hand_vel"
    query_rate_hz: float = 100.0

    def __post_init__(self) -> None:
        if min(self.dim, self.depth, self.cross_heads, self.self_heads, self.head_dim, self.latents_per_step) < 1:
            raise ValueError("POYOConfig: dim, depth, heads, head_dim and latents_per_step must be >= 1")
        if not self.latent_step > 0:
            raise ValueError(f"POYOConfig.latent_step must be > 0 s, got {self.latent_step}")


PRESETS: dict[str, dict[str, Any]] = {
    # POYO-1 11.8M (torch_brain poyo.py / paper Table): dim 128, depth 24, 4 cross heads,
    # 8 self heads, head dim 64, 32 latents every 0.125 s, ffn_dropout 0.2, lin_dropout 0.4.
    "poyo_11.8m": {},
    # POYO 1.3M (paper's small model): dim 64, depth 6, 16 latents per step.
    "poyo_1.3m": {"dim": 64, "depth": 6, "latents_per_step": 16},
    # CPU-sized for tests and the demo.
    "tiny": {"dim": 64, "depth": 2, "cross_heads": 2, "self_heads": 2, "head_dim": 32, "latents_per_step": 8,
             "dropout": 0.1, "lin_dropout": 0.1, "min_units": 20},
}


class POYO(UnitRecalibration, nn.Module):
    """POYO decoder.

    Args:
        config: architecture.
        unit_keys: initial unit vocabulary (``"session/unit"``).
        sessions: initial session vocabulary.
        behavior_dim: width of the decoded behaviour.

    Shapes:
        forward(batch of per-spike tokens, padded [B, L] or packed [sum L]) -> ``behavior``
        [B, Q, behavior_dim] at ``batch.query_timestamps``.
    """

    def __init__(
        self, config: POYOConfig, *, unit_keys: Sequence[str], sessions: Sequence[str], behavior_dim: int
    ) -> None:
        super().__init__()
        self.config, self.behavior_dim = config, behavior_dim
        self.unit_embedding = UnitEmbedding(dim=config.dim, keys=list(unit_keys))
        self.session_embedding = KeyedEmbedding(dim=config.dim, keys=list(sessions))
        self.token_type_embedding = nn.Embedding(N_TOKEN_TYPES, config.dim)
        self.latent_embedding = nn.Embedding(config.latents_per_step, config.dim)
        nn.init.normal_(self.latent_embedding.weight, std=EMBEDDING_INIT_STD)  # torch_brain's latent init
        # Token types at the unit rows' scale (torch_brain's emb_init_scale): at nn.Embedding's
        # N(0, 1) a token type outweighs the N(0, 0.02^2) unit rows 50:1 and, after the encoder's
        # LayerNorm, hides which unit spiked.
        nn.init.normal_(self.token_type_embedding.weight, std=EMBEDDING_INIT_STD)
        self.perceiver = PerceiverIO(
            dim=config.dim, depth=config.depth, cross_heads=config.cross_heads, self_heads=config.self_heads,
            head_dim=config.head_dim, dropout=config.dropout,
        )
        self.readout_dropout = FastDropout(config.lin_dropout)
        self.readout = nn.Linear(config.dim, behavior_dim)

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        if batch.query_timestamps is None:
            raise ValueError("POYO needs output queries: tokenize with SpikeConfig(query='rate' or 'behavior')")
        table, index = self._token_rows(batch)  # [R, D], [*P]: token i is table[index[i]]
        if self.training and self.config.unit_dropout:
            batch, index = self._drop_units(batch, index)
        latents, latent_times = latent_grid(
            self.latent_embedding, batch.duration, step=self.config.latent_step
        )  # [B, M, D], [B, M]
        queries = self.session_embedding(self._session_rows(batch))[:, None, :].expand(
            -1, batch.query_timestamps.shape[1], -1
        )  # [B, Q, D]
        if batch.packed:
            out = self._packed(batch, table, index, latents, latent_times, queries)
        else:
            out = self.perceiver(
                table, batch.timestamps, latents, latent_times, queries, batch.query_timestamps,
                input_mask=batch.mask, input_index=index,
            )  # fmt: skip
        return {"behavior": self.readout(self.readout_dropout(out))}  # [B, Q, behavior_dim]

    def _token_rows(self, batch: Batch) -> tuple[Tensor, Tensor]:
        """Input tokens as a table of distinct (unit, token type) rows and a row per token.

        A token is its unit's embedding + its token type's embedding, so a batch of ~30k
        spike tokens has only (distinct units) x (token types) different rows; the encoder
        normalises and projects each row once instead of once per spike.

        Returns:
            table [R, D] and index long [*P] (padding tokens point at an arbitrary row).
        """
        rows = self.unit_embedding.lookup(batch.unit_keys)  # [sum U] vocabulary rows
        unique, inverse = torch.unique(rows, return_inverse=True)  # [R_u], [sum U]
        types = self.token_type_embedding.weight  # [T, D]
        table = (self.unit_embedding(unique)[:, None, :] + types[None]).flatten(0, 1)  # [R_u * T, D]
        index = inverse[batch.unit_index.clamp(min=0)] * types.shape[0] + batch.token_type  # [*P]
        return table, index

    def _session_rows(self, batch: Batch) -> Tensor:
        return self.session_embedding.lookup(batch.sessions)

    def _packed(
        self, batch: Batch, table: Tensor, index: Tensor, latents: Tensor, latent_times: Tensor, queries: Tensor
    ) -> Tensor:
        b, m, q = batch.batch_size, latents.shape[1], queries.shape[1]
        query_keep = batch.query_mask.reshape(-1)  # [B * Q]
        n_queries = batch.query_mask.sum(1)
        out = self.perceiver(
            table, batch.timestamps, latents.reshape(b * m, -1), latent_times.reshape(-1),
            queries.reshape(b * q, -1)[query_keep], batch.query_timestamps.reshape(-1)[query_keep],
            input_index=index, input_cu_seqlens=batch.cu_seqlens,
            latent_cu_seqlens=torch.arange(b + 1, device=index.device, dtype=torch.int32) * m,
            query_cu_seqlens=torch.cat([n_queries.new_zeros(1), n_queries.cumsum(0)]).to(torch.int32),
        )  # fmt: skip
        full = out.new_zeros(b * q, out.shape[-1])
        full[query_keep] = out
        return full.view(b, q, -1)  # [B, Q, D]

    def _drop_units(self, batch: Batch, tokens: Tensor) -> tuple[Batch, Tensor]:
        """Hide all tokens of a random subset of each window's units (:func:`unit_dropout_keep`).

        ``tokens`` is any per-token tensor [*P, ...] (embeddings or table rows); packed batches
        return it with the dropped tokens removed.
        """
        token_keep = unit_dropout_keep(batch, self.config.min_units)
        if not batch.packed:
            return replace(batch, mask=batch.mask & token_keep), tokens
        return select_packed(batch, token_keep), tokens[token_keep]


def poyo_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """MSE between decoded and true behaviour at the valid queries."""
    target = single_target(batch, "POYO")  # [B, Q, D]
    return behavior_mse(outputs["behavior"], target, batch.query_mask), {}


def _tokenizer(config: POYOConfig, **overrides: Any) -> SpikeTokenizer:
    return SpikeTokenizer(
        SpikeConfig(**{"query": "rate", "query_rate_hz": config.query_rate_hz,
                       "behavior_keys": (config.behavior_key,), **overrides})
    )


SPEC = register(
    ModelSpec(
        name="poyo", config_cls=POYOConfig, model_cls=POYO, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=poyo_objective, sizes_from_data=spike_decoder_sizes, task="decoding", pack=False,
        causal=False,  # latents attend to every spike of the window, future included
    )
)
