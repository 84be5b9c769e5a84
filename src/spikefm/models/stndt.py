"""STNDT: Spatiotemporal Neural Data Transformer (Le & Shlizerman 2022), masked modelling + contrast.

Two views of one window of binned counts ``[T, N]``: temporal tokens (one per bin, width N)
and spatial tokens (one per neuron, width T). Each layer attends over time, then mixes
neurons with an ``N x N`` spatial attention matrix (:class:`~spikefm.nn.SpatioTemporalBlock`).
Training hides random (bin, neuron) entries (zero-masking, "full" mask mode) and scores the
Poisson NLL on the hidden entries plus every held-out unit (zero-filled, never seen), and adds
``contrast_weight`` x NT-Xent between two independent light re-maskings of the same batch,
computed on the embedder outputs (STNDT's ``CONTRAST_LAYER: 'embedder'``), for the temporal and
the spatial embedding alike.

STNDT runs the transformer on both contrastive views but, with the contrast taken at the
embedder, only the embeddings enter the loss; we embed the views and skip the unused passes
(the same loss for a third of the compute).

Source: trungle93/STNDT @92ffe21 ``src/model.py``, ``src/mask.py``, ``src/runner.py``,
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
from spikefm.nn.position import SinusoidalEmbedding
from spikefm.nn.transformer import SpatioTemporalBlock
from spikefm.objectives.losses import nt_xent, poisson_nll
from spikefm.tokenize.base import Batch
from spikefm.tokenize.binned import BinnedConfig, BinnedTokenizer

__all__ = ["STNDTConfig", "STNDT", "stndt_objective", "mask_entries", "PRESETS"]


@dataclass
class STNDTConfig:
    """STNDT architecture, masking and contrastive settings.

    Attributes:
        n_bins: T, bins per window (the spatial tokens' width; fixed, as in STNDT).
        depth: spatiotemporal layers (``NUM_LAYERS``).
        heads: heads of both attentions (``NUM_HEADS``).
        ffn_dim: feed-forward inner width (``HIDDEN_SIZE``).
        dropout: residual dropout (``DROPOUT``).
        dropout_embedding: dropout after the positional encodings (``DROPOUT_EMBEDDING``).
        dropout_rates: dropout before the rate read-out (``DROPOUT_RATES``).
        context_forward, context_backward: temporal attention window in bins (None = full).
        mask_ratio: probability that a held-in (bin, neuron) entry is hidden (``MASK_RATIO``).
        mask_token_ratio: fraction of hidden entries set to 0 (``MASK_TOKEN_RATIO``).
        mask_random_ratio: of the rest, fraction set to a random count (``MASK_RANDOM_RATIO``).
        contrast_mask_ratio, contrast_token_ratio, contrast_random_ratio: the same for the two
            contrastive views (``CONTRAST_MASK_*``).
        contrast_weight: weight of each NT-Xent term (``LAMBDA``); 0 disables the contrast.
        temperature: NT-Xent temperature (``TEMPERATURE``).
        fixup_init: T-Fixup scaling of the temporal blocks' weights (``FIXUP_INIT``).
        bin_size: seconds per bin.
    """

    n_bins: int = 180
    depth: int = 4
    heads: int = 2
    ffn_dim: int = 128
    dropout: float = 0.1
    dropout_embedding: float = 0.2
    dropout_rates: float = 0.2
    context_forward: int | None = 4
    context_backward: int | None = 8
    mask_ratio: float = 0.25
    mask_token_ratio: float = 1.0
    mask_random_ratio: float = 0.5
    contrast_mask_ratio: float = 0.05
    contrast_token_ratio: float = 0.5
    contrast_random_ratio: float = 0.5
    contrast_weight: float = 0.1
    temperature: float = 0.07
    fixup_init: bool = True
    bin_size: float = 0.005

    def __post_init__(self) -> None:
        if min(self.n_bins, self.depth, self.heads, self.ffn_dim) < 1:
            raise ValueError("STNDTConfig: n_bins, depth, heads and ffn_dim must be >= 1")
        for name in ("mask_ratio", "contrast_mask_ratio"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"STNDTConfig.{name} must be in (0, 1), got {getattr(self, name)}")
        for name in ("mask_token_ratio", "mask_random_ratio", "contrast_token_ratio", "contrast_random_ratio"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"STNDTConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.contrast_weight < 0 or not self.temperature > 0:
            raise ValueError("STNDTConfig: contrast_weight must be >= 0 and temperature > 0")


PRESETS: dict[str, dict[str, Any]] = {
    # configs/mc_maze.yaml over src/config/default.py: 4 layers, 2 heads, FFN 128 (HIDDEN_SIZE),
    # dropout 0.1 / embedding 0.2 / rates 0.2, context forward 4 / backward 8 (FULL_CONTEXT False),
    # MASK_MODE full with ratio 0.25 and MASK_TOKEN_RATIO 1.0 (all zeroed), contrast mask ratio
    # 0.05 with token 0.5 / random 0.5, LAMBDA 0.1, TEMPERATURE 0.07, FIXUP_INIT, PRE_NORM,
    # LINEAR_EMBEDDER, sinusoidal positions. NLB MC_Maze at 5 ms: 140 observed + 40 forward bins.
    "mc_maze": {},
    # CPU-sized: 2 layers, 1 s windows of 20 ms bins, full temporal context; dropouts as published
    # (0.1 / 0.2 / 0.2, STNDT's mc_maze config). Provisional until re-chosen on validation with
    # `spikefm bench` (docs/results/protocol.md).
    "tiny": {"n_bins": 50, "bin_size": 0.02, "depth": 2, "context_forward": None, "context_backward": None},
}


def mask_entries(
    x: Tensor, ratio: float, zero_ratio: float, random_ratio: float, eligible: Tensor
) -> tuple[Tensor, Tensor]:
    """STNDT "full" masking: hide each eligible entry independently with probability ``ratio``.

    Of the hidden entries a fraction ``zero_ratio`` is set to 0 and, of the rest, a fraction
    ``random_ratio`` to a random count uniform over ``0..max`` of the eligible entries; the rest
    keep their value. The number of random draws does not depend on the data.

    Args:
        x: [B, T, N] counts.
        ratio, zero_ratio, random_ratio: see above.
        eligible: bool [B, T, N]; only these entries can be hidden.

    Returns:
        (masked counts [B, T, N], hidden bool [B, T, N]).
    """
    draws = torch.rand((3, *x.shape), device=x.device)  # [3, B, T, N]
    hidden = (draws[0] < ratio) & eligible
    zero = hidden & (draws[1] < zero_ratio)
    randomise = hidden & ~zero & (draws[1] < zero_ratio + (1 - zero_ratio) * random_ratio)
    top = x[eligible].max() if bool(eligible.any()) else x.new_zeros(())
    random_counts = torch.floor(draws[2] * (top + 1)).clamp(max=top)
    out = torch.where(zero, torch.zeros_like(x), x)
    return torch.where(randomise, random_counts.to(x.dtype), out), hidden


class STNDT(nn.Module):
    """STNDT on one session's count vectors.

    Args:
        config: architecture.
        n_units: N, units in the count vector (held-in + held-out).

    Shapes:
        forward(batch with ``values`` [B, T, N] counts, T = ``config.n_bins``) ->
        ``log_rates`` [B, T, N], ``counts`` [B, T, N], ``loss_mask`` [B, T, N]; in training also
        the two views' temporal ``contrast_temporal`` [2, B, T * N] and spatial
        ``contrast_spatial`` [2, B, N * T] embeddings.
    """

    def __init__(self, config: STNDTConfig, *, n_units: int) -> None:
        super().__init__()
        self.config, self.n_units = config, n_units
        steps = config.n_bins
        self.embed = nn.Linear(n_units, n_units)  # LINEAR_EMBEDDER: temporal tokens
        self.spatial_embed = nn.Linear(steps, steps)  # and spatial tokens
        self.time_position = SinusoidalEmbedding(dim=n_units)
        self.unit_position = SinusoidalEmbedding(dim=steps)
        self.embed_dropout = nn.Dropout(config.dropout_embedding)
        self.blocks = nn.ModuleList(
            SpatioTemporalBlock(
                dim=n_units, length=steps, heads=config.heads, ffn_dim=config.ffn_dim, ffn="relu",
                temporal_head_dim=math.ceil(n_units / config.heads), spatial_head_dim=math.ceil(steps / config.heads),
                dropout=config.dropout,
            )
            for _ in range(config.depth)
        )  # fmt: skip
        self.norm = nn.LayerNorm(n_units)
        self.rate_dropout = nn.Dropout(config.dropout_rates)
        self.readout = nn.Linear(n_units, n_units)
        self._init_weights()

    def _init_weights(self) -> None:
        nn.init.uniform_(self.readout.weight, -0.1, 0.1)  # STNDT init_weights: initrange 0.1
        nn.init.zeros_(self.readout.bias)
        if not self.config.fixup_init:
            return
        scale = 0.67 * self.config.depth ** (-0.25)  # T-Fixup, as STNDT's fixup_initialization
        with torch.no_grad():
            for block in self.blocks:
                temporal = block.temporal
                for weight in (temporal.ffn.up.weight, temporal.ffn.down.weight, temporal.attention.to_out.weight):
                    weight.mul_(scale)
                value = temporal.attention.to_kv.weight.chunk(2, dim=0)[1]  # [inner, N] value rows
                value.mul_(scale * math.sqrt(2.0))

    def forward(self, batch: Batch) -> dict[str, Tensor]:
        counts = batch.values.float()  # [B, T, N]
        self._check(counts)
        heldout = batch.unit_extras["heldout"].to(counts.device).view(counts.shape[0], self.n_units)  # [B, N]
        valid = batch.mask[..., None].expand_as(counts)  # [B, T, N]
        observed = valid & ~heldout[:, None, :]
        x = counts.masked_fill(~observed, 0.0)  # held-out units and padding are never seen
        hidden = torch.zeros_like(observed)
        outputs: dict[str, Tensor] = {}
        if self.training:
            cfg = self.config
            if cfg.contrast_weight > 0:
                outputs.update(self._contrast_views(x, observed))
            x, hidden = mask_entries(x, cfg.mask_ratio, cfg.mask_token_ratio, cfg.mask_random_ratio, observed)
        temporal, spatial = self._embed(x)
        log_rates = self._encode(temporal, spatial, batch.mask)
        loss_mask = (hidden | heldout[:, None, :]) & valid
        return {"log_rates": log_rates, "counts": counts, "loss_mask": loss_mask, **outputs}

    def _check(self, counts: Tensor) -> None:
        if counts.shape[-1] != self.n_units:
            raise ValueError(f"STNDT was built for {self.n_units} units, got count vectors of {counts.shape[-1]}")
        if counts.shape[1] != self.config.n_bins:
            raise ValueError(
                f"STNDT was built for windows of {self.config.n_bins} bins, got {counts.shape[1]}; set "
                "model.overrides.n_bins to the window length / bin_size"
            )

    def _embed(self, x: Tensor) -> tuple[Tensor, Tensor]:
        temporal = self.embed(x) * math.sqrt(self.n_units)  # [B, T, N]
        spatial = self.spatial_embed(x.transpose(1, 2)) * math.sqrt(self.config.n_bins)  # [B, N, T]
        return temporal, spatial

    def _encode(self, temporal: Tensor, spatial: Tensor, key_mask: Tensor) -> Tensor:
        steps, units = temporal.shape[1], temporal.shape[2]
        temporal = self.embed_dropout(temporal + self.time_position(torch.arange(steps, device=temporal.device)))
        spatial = self.embed_dropout(spatial + self.unit_position(torch.arange(units, device=spatial.device)))
        attn_mask = local_window_mask(
            steps, backward=self.config.context_backward, forward=self.config.context_forward, device=temporal.device
        )
        h = SpatioTemporalBlock.stack_forward(self.blocks, temporal, spatial, key_mask=key_mask, attn_mask=attn_mask)
        return self.readout(self.rate_dropout(self.norm(h)))  # [B, T, N]

    def _contrast_views(self, x: Tensor, observed: Tensor) -> dict[str, Tensor]:
        """Embedder outputs of two independent light re-maskings of the (unmasked) batch."""
        cfg = self.config
        temporal, spatial = [], []
        for _ in range(2):
            view, _ = mask_entries(x, cfg.contrast_mask_ratio, cfg.contrast_token_ratio, cfg.contrast_random_ratio,
                                   observed)  # fmt: skip
            t, s = self._embed(view)
            temporal.append(t.flatten(1))  # [B, T * N]
            spatial.append(s.flatten(1))  # [B, N * T]
        return {
            "contrast_temporal": torch.stack(temporal),  # [2, B, T * N]
            "contrast_spatial": torch.stack(spatial),  # [2, B, N * T]
            "contrast_weight": x.new_tensor(cfg.contrast_weight),
            "temperature": x.new_tensor(cfg.temperature),
        }


def stndt_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Masked Poisson NLL (hidden entries + held-out units) + weight x (temporal + spatial NT-Xent)."""
    nll = poisson_nll(outputs["log_rates"], outputs["counts"], outputs["loss_mask"])
    metrics = {"masked_nll": nll.detach(), "masked_fraction": outputs["loss_mask"].float().mean()}
    if "contrast_temporal" not in outputs or outputs["log_rates"].shape[0] < 2:
        return nll, metrics  # eval mode, or a single window (no negatives)
    tau = float(outputs["temperature"])
    contrast = sum(nt_xent(outputs[key][0], outputs[key][1], tau) for key in ("contrast_temporal", "contrast_spatial"))
    metrics["contrast"] = contrast.detach()
    return nll + outputs["contrast_weight"] * contrast, metrics


def _sizes(recordings: Sequence[Recording], config: STNDTConfig) -> dict[str, Any]:
    counts = {r.n_units for r in recordings}
    if len(counts) != 1 or len({tuple(r.units.ids) for r in recordings}) != 1:
        raise ValueError(
            "STNDT reads one session's fixed count vector; train it on one session "
            f"(data.sessions: [<id>]), got sessions {[r.session for r in recordings]}"
        )
    return {"n_units": counts.pop()}


def _tokenizer(config: STNDTConfig, **overrides: Any) -> BinnedTokenizer:
    return BinnedTokenizer(BinnedConfig(**{"bin_size": config.bin_size, "query": "none", **overrides}))


SPEC = register(
    ModelSpec(
        name="stndt", config_cls=STNDTConfig, model_cls=STNDT, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=stndt_objective, sizes_from_data=_sizes, task="self_supervised", multi_session=False,
        causal=False,  # spatial tokens hold each neuron's whole window, whatever the temporal attention window
    )
)
