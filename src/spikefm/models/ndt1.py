"""NDT1: Neural Data Transformer (Ye & Pandarinath 2021), masked modelling of binned spikes.

One token per time bin = the whole population count vector (held-in units, held-out units
zero-filled). A bidirectional pre-norm transformer with learned positions and an optional
local attention window predicts every unit's log-rate; training hides random time steps
(zero-masking) and scores the Poisson NLL on hidden entries plus every held-out unit, so
held-out neurons are predicted from held-in ones (NLB co-smoothing).

Source: snel-repo/neural-data-transformers @98dd85a, ``src/model.py``, ``src/mask.py``,
``src/config/default.py``, ``configs/mc_maze.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.attention import local_window_mask
from spikefm.nn.position import LearnedPositionEmbedding
from spikefm.nn.transformer import TransformerEncoder
from spikefm.objectives.losses import poisson_nll
from spikefm.objectives.masking import neuron_mask, random_token_mask
from spikefm.tokenize.base import Batch
from spikefm.tokenize.binned import BinnedConfig, BinnedTokenizer

__all__ = ["NDT1Config", "NDT1", "ndt1_objective", "PRESETS"]


@dataclass
class NDT1Config:
    """NDT1 architecture and masking.

    Attributes:
        dim: token width; 0 = the count vector itself (NDT1's ``EMBED_DIM: 0``, width = units).
        depth: transformer layers.
        heads: attention heads.
        ffn_dim: feed-forward inner width (NDT1 ``HIDDEN_SIZE``).
        dropout: residual dropout (``DROPOUT``).
        dropout_embedding: dropout on the embedded population activity (``DROPOUT_EMBEDDING``).
        dropout_rates: dropout before the rate read-out (``DROPOUT_RATES``).
        context_forward, context_backward: local attention window in bins (None = full context).
        max_bins: longest window in bins (size of the learned position table).
        mask_ratio: fraction of time steps hidden per sample (``MASK_RATIO``).
        mask_span: longest contiguous run of hidden steps (``MASK_MAX_SPAN``).
        neuron_mask_ratio: also hide this fraction of held-in units for whole windows and
            score them (coordinated-dropout style; 0 in the published preset). It trains the
            co-smoothing task itself: predicting unseen units from seen ones.
        scale_embedding: multiply the embedded input by sqrt(width), as NDT1 does.
        bin_size: seconds per bin.
        forward_bins: the last this many bins of every window are always zeroed in the input and scored, in
            training and evaluation (forward prediction as NLB's NDT trains for fp-bps: its forward bins enter
            the model masked); 0 (default) for none.
    """

    dim: int = 0
    depth: int = 4
    heads: int = 2
    ffn_dim: int = 128
    dropout: float = 0.1
    dropout_embedding: float = 0.2
    dropout_rates: float = 0.2
    context_forward: int | None = 4
    context_backward: int | None = 8
    max_bins: int = 256
    mask_ratio: float = 0.25
    mask_span: int = 1
    neuron_mask_ratio: float = 0.0
    scale_embedding: bool = True
    bin_size: float = 0.02
    forward_bins: int = 0

    def __post_init__(self) -> None:
        if self.forward_bins < 0:
            raise ValueError(f"NDT1Config.forward_bins must be >= 0, got {self.forward_bins}")
        if self.depth < 1 or self.heads < 1 or self.ffn_dim < 1 or self.dim < 0:
            raise ValueError("NDT1Config: depth, heads and ffn_dim must be >= 1 and dim >= 0")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"NDT1Config.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.neuron_mask_ratio < 1.0:
            raise ValueError(f"NDT1Config.neuron_mask_ratio must be in [0, 1), got {self.neuron_mask_ratio}")


PRESETS: dict[str, dict[str, Any]] = {
    # configs/mc_maze.yaml over src/config/default.py: 4 layers, 2 heads, FFN 128, dropout 0.1 /
    # 0.2 / 0.2, context forward 4 / backward 8, mask ratio 0.25, EMBED_DIM 0, learned positions.
    "mc_maze": {},
    # CPU-sized for ~100 training trials: full context (a trial is 50 bins), a small linear
    # embedding without NDT1's sqrt(width) input scale, heavy dropout against overfitting so few
    # trials, and coordinated neuron masking (ratio 0.3; STNDT's and MtM's neuron masking).
    # Provisional: these were settled in development runs scored before the evaluation protocol;
    # re-choose them on validation with `spikefm bench` (docs/results/protocol.md).
    "tiny": {"dim": 64, "depth": 2, "heads": 2, "ffn_dim": 128, "context_forward": None, "context_backward": None,
             "dropout": 0.3, "dropout_embedding": 0.3, "dropout_rates": 0.3, "neuron_mask_ratio": 0.3,
             "scale_embedding": False},
}


class NDT1(nn.Module):
    """NDT1 on one session's count vectors.

    Args:
        config: architecture.
        n_units: units in the count vector (held-in + held-out).

    Shapes:
        forward(batch with ``values`` [B, T, N] counts) -> ``log_rates`` [B, T, N], plus the
        ``counts`` targets and the ``loss_mask`` [B, T, N] the objective scores.
    """

    def __init__(self, config: NDT1Config, *, n_units: int) -> None:
        super().__init__()
        self.config, self.n_units = config, n_units
        width = config.dim or n_units
        self.embed = nn.Linear(n_units, width) if config.dim else nn.Identity()
        self.scale = math.sqrt(width) if config.scale_embedding else 1.0
        self.position = LearnedPositionEmbedding(num_positions=config.max_bins, dim=width)
        self.embed_dropout = nn.Dropout(config.dropout_embedding)
        self.encoder = TransformerEncoder(
            dim=width, depth=config.depth, heads=config.heads, head_dim=max(1, math.ceil(width / config.heads)),
            ffn_dim=config.ffn_dim, ffn="relu", dropout=config.dropout,
        )
        self.rate_dropout = nn.Dropout(config.dropout_rates)
        self.readout = nn.Linear(width, n_units)

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        counts = batch.values.float()  # [B, T, N]
        if counts.shape[-1] != self.n_units:
            raise ValueError(f"NDT1 was built for {self.n_units} units, got count vectors of {counts.shape[-1]}")
        heldout = batch.unit_extras["heldout"].to(counts.device).view(counts.shape[0], self.n_units)  # [B, N]
        valid = batch.mask[..., None].expand_as(counts)  # [B, T, N]
        x = counts.masked_fill(heldout[:, None, :], 0.0)  # held-out units are never seen
        hidden = torch.zeros_like(valid)
        if self.config.forward_bins:  # forward bins: always hidden from the input, always scored
            hidden = self.forward_mask(batch.mask)[..., None] & valid
            x = x.masked_fill(hidden, 0.0)
        if self.training:
            masked = random_token_mask(
                x, self.config.mask_ratio, zero_ratio=1.0, random_ratio=0.0, span=self.config.mask_span, valid=valid
            )
            x, hidden = masked.masked_input, hidden | masked.mask
            if self.config.neuron_mask_ratio > 0:
                held_in = valid & ~heldout[:, None, :]
                dropped = neuron_mask(x, self.config.neuron_mask_ratio, valid=held_in)
                x, hidden = dropped.masked_input, hidden | dropped.mask
        log_rates = self._encode(x, batch.mask)
        loss_mask = (hidden | heldout[:, None, :]) & valid
        return {"log_rates": log_rates, "counts": counts, "loss_mask": loss_mask}

    def forward_mask(self, mask: Tensor) -> Tensor:
        """bool [B, T]: each window's last ``forward_bins`` valid bins (valid bins lead, padding trails)."""
        step = torch.arange(mask.shape[1], device=mask.device)[None]
        return mask & (step >= mask.sum(1, keepdim=True) - self.config.forward_bins)

    def _encode(self, x: Tensor, key_mask: Tensor) -> Tensor:
        steps = x.shape[1]
        if steps > self.config.max_bins:
            raise ValueError(f"window of {steps} bins exceeds NDT1 max_bins={self.config.max_bins}")
        h = self.embed(x) * self.scale  # [B, T, D]
        h = self.embed_dropout(h + self.position(torch.arange(steps, device=x.device)))
        attn_mask = local_window_mask(
            steps, backward=self.config.context_backward, forward=self.config.context_forward, device=x.device
        )
        h = self.encoder(h, key_mask=key_mask, attn_mask=attn_mask)
        return self.readout(self.rate_dropout(h))  # [B, T, N]


def ndt1_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Poisson NLL (log-rate input) on hidden entries and held-out units only."""
    loss = poisson_nll(outputs["log_rates"], outputs["counts"], outputs["loss_mask"])
    return loss, {"masked_fraction": outputs["loss_mask"].float().mean()}


def _sizes(recordings: Sequence[Recording], config: NDT1Config) -> dict[str, Any]:
    counts = {r.n_units for r in recordings}
    if len(counts) != 1 or len({tuple(r.units.ids) for r in recordings}) != 1:
        raise ValueError(
            "NDT1 reads one session's fixed count vector; train it on one session "
            f"(data.sessions: [<id>]), got sessions {[r.session for r in recordings]}"
        )
    return {"n_units": counts.pop()}


def _tokenizer(config: NDT1Config, **overrides: Any) -> BinnedTokenizer:
    return BinnedTokenizer(BinnedConfig(**{"bin_size": config.bin_size, "query": "none", **overrides}))


SPEC = register(
    ModelSpec(
        name="ndt1", config_cls=NDT1Config, model_cls=NDT1, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=ndt1_objective, sizes_from_data=_sizes, task="self_supervised", multi_session=False,
        causal=lambda c: c.context_forward == 0,  # attention may look context_forward bins ahead (None: all)
    )
)
