"""MtM, multi-task masking (Zhang et al. 2024): one model, four masking schemes, prompt tokens.

One token per time bin. Each session's count vector goes through its own stitcher
(``Linear(N, 2N)`` -> softsign -> ``Linear(2N, dim)``), learned positions are added, and a
session token and a prompt token (``Embedding(4, dim)``: which masking scheme) are prepended.
A pre-norm transformer reads the sequence and a per-session ``Linear(dim, N)`` gives every
unit's log-rate. Training draws one scheme per batch: neuron (hide 30% of the neurons),
causal (hide 60% of the time steps, causal attention), intra-region (hide 30% of one region's
neurons, the other regions hidden too) or inter-region (hide one whole region), and scores
the Poisson NLL on the hidden entries plus every held-out unit (always zero-filled).

Our addition, off in the published preset: ``region_token`` prepends a region embedding
naming the region a region scheme predicts ("all" otherwise), so regions have identities.

Evaluation on the four tasks (forward prediction, neuron prediction, intra- and inter-region
co-smoothing) lives in :mod:`spikefm.eval.mtm_tasks`; ``forward`` in eval mode runs the neuron
prompt with nothing but the held-out units hidden (NLB co-smoothing).

Source: colehurwitz/IBL_foundation_model @e0c39bd ``src/models/ndt1.py`` (NeuralEmbeddingLayer with
prompt / session tokens, NeuralEncoder), ``src/models/masker.py``, ``src/trainer/base.py``
(one scheme per batch), ``src/configs/ndt1_stitching_prompting.yaml``, stitcher
``StitchEncoder`` / ``StitchDecoder``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.models._shared import train_only
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.attention import causal_mask as causal_attention
from spikefm.nn.identity import KeyedEmbedding, PromptEmbedding
from spikefm.nn.position import LearnedPositionEmbedding
from spikefm.nn.transformer import TransformerEncoder
from spikefm.objectives.losses import poisson_nll
from spikefm.objectives.masking import MaskingScheme, apply_scheme, sample_scheme
from spikefm.tokenize.base import Batch
from spikefm.tokenize.binned import BinnedConfig, BinnedTokenizer

__all__ = ["MtMConfig", "MtM", "mtm_objective", "PRESETS", "ALL_REGIONS"]

ALL_REGIONS = "all"  # region-token key for schemes that do not single out a region


@dataclass
class MtMConfig:
    """MtM architecture and masking.

    Attributes:
        dim: token width (``transformer.hidden_size``).
        depth: transformer layers (``n_layers``).
        heads: attention heads (``n_heads``).
        ffn_dim: feed-forward inner width (``inter_size``).
        dropout: transformer dropout, residual and attention (``transformer.dropout``).
        dropout_embedding: dropout on the embedded tokens (``embedder.dropout``).
        stitch_mult: stitcher hidden width / units (``embedder.mult``).
        max_bins: learned position table size (``embedder.max_F``).
        schemes: masking schemes drawn from, one per batch.
        neuron_ratio, causal_ratio, intra_ratio: fraction hidden by those schemes (``masker.ratio``).
        region_token: prepend a region embedding naming the target region (our addition).
        bin_size: seconds per bin.
    """

    dim: int = 512
    depth: int = 5
    heads: int = 8
    ffn_dim: int = 1024
    dropout: float = 0.4
    dropout_embedding: float = 0.2
    stitch_mult: int = 2
    max_bins: int = 100
    schemes: tuple[str, ...] = ("neuron", "causal", "intra_region", "inter_region")
    neuron_ratio: float = 0.3
    causal_ratio: float = 0.6
    intra_ratio: float = 0.3
    region_token: bool = False
    bin_size: float = 0.02

    def __post_init__(self) -> None:
        self.schemes = tuple(MaskingScheme(s).value for s in self.schemes)
        if not self.schemes:
            raise ValueError("MtMConfig.schemes is empty; pick some of neuron, causal, intra_region, inter_region")
        if min(self.dim, self.depth, self.heads, self.ffn_dim, self.stitch_mult, self.max_bins) < 1:
            raise ValueError("MtMConfig: dim, depth, heads, ffn_dim, stitch_mult and max_bins must be >= 1")
        for name in ("neuron_ratio", "causal_ratio", "intra_ratio"):
            if not 0.0 < getattr(self, name) < 1.0:
                raise ValueError(f"MtMConfig.{name} must be in (0, 1), got {getattr(self, name)}")


PRESETS: dict[str, dict[str, Any]] = {
    # configs/ndt1_stitching_prompting.yaml: 5 layers, hidden 512, 8 heads, inter_size 1024, GELU,
    # dropout 0.4, embedder mult 2 / softsign / dropout 0.2, max_F 100 (2 s of 20 ms bins),
    # learned positions, prompt + session tokens, masker ratio 0.3; causal ratio 0.6 (MtM paper).
    "ibl": {},
    # CPU-sized, with region tokens (configs/mtm_tiny.yaml: 1500 steps on 4 synthetic sessions, 85 s
    # CPU). Provisional: the size was settled in development runs scored before the evaluation
    # protocol; re-choose on validation with `spikefm bench` (docs/results/protocol.md).
    "tiny": {"dim": 64, "depth": 2, "heads": 2, "ffn_dim": 128, "dropout": 0.1, "dropout_embedding": 0.1,
             "region_token": True},
}


class MtM(nn.Module):
    """MtM over many sessions with per-session stitchers.

    Args:
        config: architecture.
        session_units: session -> number of units N (held-in + held-out), in a fixed order.
        regions: the region vocabulary (unit ``region`` labels).

    Shapes:
        forward(batch of binned tokens, values [B, T, U]) -> ``log_rates`` [B, T, U], ``counts``
        [B, T, U], ``loss_mask`` [B, T, U] (U = the batch's most units; padding False);
        :meth:`predict_masked` (batch, hide [B, T, U], scheme) -> log-rates [B, T, U].
    """

    def __init__(self, config: MtMConfig, *, session_units: dict[str, int], regions: Sequence[str]) -> None:
        super().__init__()
        self.config = config
        self.session_units = dict(session_units)
        self.regions = list(regions)
        self._slot = {s: f"s{i}" for i, s in enumerate(self.session_units)}  # ModuleDict-safe names
        self.stitch_in = nn.ModuleDict({self._slot[s]: self._stitch_in(n) for s, n in self.session_units.items()})
        self.stitch_out = nn.ModuleDict({self._slot[s]: nn.Linear(config.dim, n) for s, n in self.session_units.items()})
        self.position = LearnedPositionEmbedding(num_positions=config.max_bins, dim=config.dim)
        self.session_embed = KeyedEmbedding(dim=config.dim, keys=list(self.session_units))
        self.prompt_embed = PromptEmbedding(dim=config.dim)
        self.region_embed = KeyedEmbedding(dim=config.dim, keys=[ALL_REGIONS, *self.regions]) if config.region_token \
            else None  # fmt: skip
        self.embed_dropout = nn.Dropout(config.dropout_embedding)
        self.encoder = TransformerEncoder(
            dim=config.dim, depth=config.depth, heads=config.heads, ffn_dim=config.ffn_dim, ffn="gelu",
            dropout=config.dropout, attn_dropout=config.dropout,
        )

    def _stitch_in(self, n_units: int) -> nn.Module:
        """A session's input stitcher: ``Linear(N, mN)`` -> softsign -> ``Linear(mN, dim)``."""
        width = self.config.stitch_mult * n_units
        return nn.Sequential(nn.Linear(n_units, width), nn.Softsign(), nn.Linear(width, self.config.dim))

    # ------------------------------------------------------------------ new sessions
    def add_session(self, recording: Recording) -> None:
        """New stitchers and a session token for ``recording`` (train them before use, alone or with the rest).

        Regions the model has not seen join its region vocabulary. The new session is not in the
        ``session_units`` a checkpoint was built with: save the adapted model with its new ``session_units``.
        """
        if recording.session in self.session_units:
            raise ValueError(f"session {recording.session!r} is already known to this MtM model")
        self.session_units[recording.session] = recording.n_units
        self._slot[recording.session] = f"s{len(self._slot)}"
        device, slot = self.session_embed.weight.device, self._slot[recording.session]
        self.stitch_in[slot] = self._stitch_in(recording.n_units).to(device)
        self.stitch_out[slot] = nn.Linear(self.config.dim, recording.n_units).to(device)
        self.session_embed.extend([recording.session])
        labels = [] if recording.units.region is None else [str(r) for r in recording.units.region]
        new_regions = sorted(set(labels) - set(self.regions) - {""})
        if new_regions and self.region_embed is not None:
            self.region_embed.extend(new_regions)
        self.regions.extend(new_regions)

    def freeze_for_recalibration(self, recording: Recording) -> list[nn.Parameter]:
        """Train only ``recording``'s stitchers and session token (the shared transformer, positions and prompts
        frozen); returns the parameters to optimise."""
        if recording.session not in self.session_units:
            raise KeyError(f"session {recording.session!r} has no stitchers; call add_session(recording) first")
        slot = self._slot[recording.session]
        return train_only(self, [self.stitch_in[slot], self.stitch_out[slot]], [(self.session_embed, [recording.session])])

    # ------------------------------------------------------------------ training forward
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        counts = batch.values.float()  # [B, T, U]
        real, heldout, region_ids = self.unit_fields(batch)  # [B, U] each
        valid = batch.mask[..., None] & real[:, None, :]  # [B, T, U]
        observed = valid & ~heldout[:, None, :]
        x = counts.masked_fill(~observed, 0.0)  # held-out units and padding are never seen
        hidden = torch.zeros_like(observed)
        scheme, targets = MaskingScheme.NEURON, None
        if self.training:
            scheme = sample_scheme(schemes=self._usable_schemes(region_ids, observed))
            regions = region_ids.masked_fill(~(real & ~heldout), -1) if scheme.needs_regions else None
            result = apply_scheme(scheme, x, ratio=self._ratio(scheme), regions=regions, valid=observed)
            x, hidden = result.masked_input, result.mask
            targets = self._target_regions(scheme, hidden, region_ids)
        log_rates = self._run(x, batch, scheme, targets)
        loss_mask = (hidden | heldout[:, None, :]) & valid
        return {"log_rates": log_rates, "counts": counts, "loss_mask": loss_mask}

    def predict_masked(
        self, batch: Batch, hide: Tensor, scheme: MaskingScheme | str, target_regions: Sequence[str] | None = None
    ) -> Tensor:
        """Log-rates with the ``hide`` entries (and always the held-out units) zeroed in the input.

        Args:
            batch: binned tokens.
            hide: bool [B, T, U] entries to hide (and predict).
            scheme: prompt and attention (causal for ``"causal"``).
            target_regions: per-sample region the scheme predicts (region token; None = "all").

        Returns:
            [B, T, U] log expected counts per bin.
        """
        real, heldout, _ = self.unit_fields(batch)
        observed = batch.mask[..., None] & (real & ~heldout)[:, None, :] & ~hide.to(batch.mask.device)
        return self._run(batch.values.float().masked_fill(~observed, 0.0), batch, MaskingScheme(scheme), target_regions)

    # ------------------------------------------------------------------ the network
    def _run(
        self, x: Tensor, batch: Batch, scheme: MaskingScheme, target_regions: Sequence[str] | None
    ) -> Tensor:
        b, steps, _ = x.shape
        if steps > self.config.max_bins:
            raise ValueError(f"window of {steps} bins exceeds MtM max_bins={self.config.max_bins}")
        h = self._stitch(x, batch.sessions) + self.position(torch.arange(steps, device=x.device))  # [B, T, D]
        prefix = self._prefix(batch.sessions, scheme, target_regions)  # [B, P, D]
        h = self.embed_dropout(torch.cat([prefix, h], dim=1))  # [B, P + T, D]
        n_prefix = prefix.shape[1]
        key_mask = torch.cat([batch.mask.new_ones(b, n_prefix), batch.mask], dim=1)
        attn_mask = causal_attention(n_prefix + steps, device=x.device) if scheme is MaskingScheme.CAUSAL else None
        h = self.encoder(h, key_mask=key_mask, attn_mask=attn_mask)[:, n_prefix:]  # [B, T, D]
        return self._read(h, batch.sessions, x.shape[-1])

    def _stitch(self, x: Tensor, sessions: Sequence[str]) -> Tensor:
        out = x.new_zeros(*x.shape[:2], self.config.dim)
        for session, rows in self._rows(sessions, x.device):
            n = self.session_units[session]
            out = out.index_copy(0, rows, self.stitch_in[self._slot[session]](x[rows, :, :n]))
        return out  # [B, T, D]

    def _read(self, h: Tensor, sessions: Sequence[str], width: int) -> Tensor:
        out = h.new_zeros(*h.shape[:2], width)
        for session, rows in self._rows(sessions, h.device):
            n = self.session_units[session]
            rates = self.stitch_out[self._slot[session]](h[rows])  # [b, T, n]
            out = out.index_copy(0, rows, nn.functional.pad(rates, (0, width - n)))
        return out  # [B, T, U]

    def _rows(self, sessions: Sequence[str], device: torch.device) -> list[tuple[str, Tensor]]:
        unknown = sorted(set(sessions) - set(self.session_units))
        if unknown:
            raise KeyError(f"MtM has no stitcher for session(s) {unknown}; known: {list(self.session_units)}")
        groups: dict[str, list[int]] = {}
        for i, session in enumerate(sessions):
            groups.setdefault(session, []).append(i)
        return [(s, torch.tensor(rows, device=device)) for s, rows in groups.items()]

    def _prefix(self, sessions: Sequence[str], scheme: MaskingScheme, targets: Sequence[str] | None) -> Tensor:
        """[session, prompt(, region)] tokens: [B, P, D]."""
        b = len(sessions)
        tokens = [self.session_embed.embed(list(sessions)), self.prompt_embed.embed([_prompt_key(scheme)] * b)]
        if self.region_embed is not None:
            tokens.append(self.region_embed.embed(list(targets) if targets is not None else [ALL_REGIONS] * b))
        return torch.stack(tokens, dim=1)

    # ------------------------------------------------------------------ masking helpers
    def unit_fields(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor]:
        """Per-sample unit validity, held-out flags and region ids (-1 = padding / unknown), each [B, U]."""
        offsets = batch.unit_offsets.tolist()
        width = batch.values.shape[-1]
        heldout = torch.as_tensor(batch.unit_extras["heldout"]).bool()
        names = np.asarray(batch.unit_extras["region"]).astype(str)
        lookup = {r: i for i, r in enumerate(self.regions)}
        real = torch.zeros(len(offsets) - 1, width, dtype=torch.bool)
        held = torch.zeros_like(real)
        region = torch.full(real.shape, -1, dtype=torch.long)
        for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
            real[i, : b - a] = True
            held[i, : b - a] = heldout[a:b]
            region[i, : b - a] = torch.tensor([lookup.get(r, -1) for r in names[a:b]], dtype=torch.long)
        device = batch.values.device
        return real.to(device), held.to(device), region.to(device)

    def _usable_schemes(self, region_ids: Tensor, observed: Tensor) -> list[MaskingScheme]:
        seen = observed.any(1)  # [B, U]
        n_regions = [len(torch.unique(r[s & (r >= 0)])) for r, s in zip(region_ids, seen)]
        usable = [MaskingScheme(s) for s in self.config.schemes]
        if min(n_regions) < 2:  # region schemes need at least two labelled regions in every sample
            usable = [s for s in usable if not s.needs_regions]
        if not usable:
            raise ValueError(f"MtM schemes {self.config.schemes} all need two labelled regions per window")
        return usable

    def _ratio(self, scheme: MaskingScheme) -> float | None:
        return {MaskingScheme.NEURON: self.config.neuron_ratio, MaskingScheme.CAUSAL: self.config.causal_ratio,
                MaskingScheme.INTRA_REGION: self.config.intra_ratio}.get(scheme)  # fmt: skip

    def _target_regions(self, scheme: MaskingScheme, hidden: Tensor, region_ids: Tensor) -> list[str] | None:
        """The region each sample's region scheme predicts (read off the hidden neurons)."""
        if not scheme.needs_regions:
            return None
        masked_units = hidden.any(1)  # [B, U]
        picked = torch.where(masked_units, region_ids, torch.full_like(region_ids, -1)).max(1).values  # [B]
        return [self.regions[int(i)] if i >= 0 else ALL_REGIONS for i in picked]


def _prompt_key(scheme: MaskingScheme) -> str:
    return MaskingScheme(scheme).value.replace("_", "-")  # PromptEmbedding keys: MTM_PROMPTS


def mtm_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Poisson NLL (log-rates) on the hidden entries and every held-out unit."""
    loss = poisson_nll(outputs["log_rates"], outputs["counts"], outputs["loss_mask"])
    return loss, {"masked_fraction": outputs["loss_mask"].float().mean()}


def _sizes(recordings: Sequence[Recording], config: MtMConfig) -> dict[str, Any]:
    sessions = [r.session for r in recordings]
    if len(set(sessions)) != len(sessions):
        raise ValueError(f"MtM needs distinct session ids, got {sessions}")
    regions = sorted({str(r) for rec in recordings if rec.units.region is not None for r in rec.units.region} - {""})
    return {"session_units": {r.session: r.n_units for r in recordings}, "regions": regions}


def _tokenizer(config: MtMConfig, **overrides: Any) -> BinnedTokenizer:
    return BinnedTokenizer(BinnedConfig(**{"bin_size": config.bin_size, "query": "none", **overrides}))


SPEC = register(
    ModelSpec(
        name="mtm", config_cls=MtMConfig, model_cls=MtM, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=mtm_objective, sizes_from_data=_sizes, task="self_supervised", multi_session=True,
        causal=False,  # bidirectional attention over the window (the causal scheme is one training mask of four)
    )
)
