"""NEDS (Zhang et al. 2025): one transformer that both encodes (behaviour -> spikes) and decodes.

Each 20 ms bin gives one *spike* token (the session's count vector through a per-session
stitcher: Linear -> softsign -> Linear) and one *behaviour* token (the behaviour vector through
its own per-session stitcher). Every token adds a modality, a session and a learned position
embedding; attention is bidirectional with rotary time. Training samples one masking scheme per
sample (NEDS's "mixed" training):

* ``encoding``: all spike tokens hidden, behaviour visible (predict spikes from behaviour);
* ``decoding``: all behaviour tokens hidden, spikes visible (predict behaviour from spikes);
* ``self-spike`` / ``self-behavior``: a random 30% of that modality's time steps hidden;
* ``random_token``: the same random 30% of time steps hidden in both modalities.

Hidden tokens are replaced by a learned mask token. Losses: Poisson NLL on the hidden spike
tokens and MSE on the hidden behaviour tokens, through per-session linear read-outs. NLB
held-out units are never an input (zeroed) and are scored at every step, so the model also
co-smooths. In eval mode the default is ``decoding``; ``forward(batch, mode="encoding")``
predicts spikes from behaviour (:mod:`spikefm.eval.neds_tasks` scores both from one model).

Source: yzhang511/NEDS @61d2ef6 ``src/multi_modal/mm.py`` (``_prepare_mixed_masking``, losses),
``encoder_embeddings.py`` (modality / session / position embeddings), ``src/models/stitcher.py``,
``src/multi_modal/mm_utils.py`` (RoPE), ``src/configs/multi_modal/mm.yaml``; MODELS.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording
from spikefm.models._shared import behavior_width, train_only
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.identity import KeyedEmbedding
from spikefm.nn.position import LearnedPositionEmbedding, RotaryTimeEmbedding
from spikefm.nn.transformer import TransformerEncoder
from spikefm.objectives.losses import mse, poisson_nll
from spikefm.objectives.masking import random_token_mask
from spikefm.tokenize.base import Batch
from spikefm.tokenize.binned import BinnedConfig, BinnedTokenizer

__all__ = ["NEDSConfig", "NEDS", "neds_objective", "PRESETS", "SCHEMES"]

SCHEMES = ("encoding", "decoding", "self-spike", "self-behavior", "random_token")
_SPIKES, _BEHAVIOR = 0, 1  # modality embedding rows


@dataclass
class NEDSConfig:
    """NEDS architecture and masking.

    Attributes:
        dim, depth, heads, ffn_dim: transformer shape (GELU feed-forward, pre-LayerNorm).
        dropout: transformer dropout on residual branches.
        attn_dropout: dropout on attention probabilities; None = ``dropout`` (NEDS uses one rate).
        embed_dropout: dropout on the stitched tokens.
        stitch_mult: inner width of a stitcher as a multiple of its input width.
        mask_ratio: fraction of time steps the random schemes hide.
        max_bins: longest window in bins (learned position table).
        bin_size: seconds per bin.
        behavior_key: behaviour series encoded / decoded.
        schemes: masking schemes sampled per training sample (subset of :data:`SCHEMES`).
        behavior_weight: weight of the behaviour MSE against the spike Poisson NLL.
    """

    dim: int = 256
    depth: int = 5
    heads: int = 8
    ffn_dim: int = 512
    dropout: float = 0.4
    attn_dropout: float | None = None
    embed_dropout: float = 0.2
    stitch_mult: int = 2
    mask_ratio: float = 0.3
    max_bins: int = 100
    bin_size: float = 0.02
    behavior_key: str = "hand_vel"
    schemes: tuple[str, ...] = SCHEMES
    behavior_weight: float = 1.0

    def __post_init__(self) -> None:
        self.schemes = tuple(self.schemes)
        if min(self.dim, self.depth, self.heads, self.ffn_dim, self.stitch_mult, self.max_bins) < 1:
            raise ValueError("NEDSConfig: dim, depth, heads, ffn_dim, stitch_mult and max_bins must be >= 1")
        if self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(f"NEDSConfig: dim ({self.dim}) must split into {self.heads} heads of even width")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"NEDSConfig.mask_ratio must be in (0, 1), got {self.mask_ratio}")
        unknown = set(self.schemes) - set(SCHEMES)
        if not self.schemes or unknown:
            raise ValueError(f"NEDSConfig.schemes must be a non-empty subset of {SCHEMES}, got {self.schemes}")


PRESETS: dict[str, dict[str, Any]] = {
    # MODELS.md (NEDS paper): hidden 256, 8 heads, FFN 512, depth 5 (also 16 / 22). mm.yaml: GELU MLP,
    # dropout 0.4, embedder dropout 0.2 and mult 2 (softsign stitcher), max_F 100 bins, masker ratio 0.3,
    # RoPE; mm.py: the five mixed masking schemes, Poisson NLL (log input) + MSE.
    "neds": {},
    "neds_medium": {"depth": 16},
    "neds_large": {"depth": 22},
    # CPU-sized (no attention dropout: it forces SDPA's slow materialised path on CPU).
    "tiny": {"dim": 64, "depth": 2, "heads": 4, "ffn_dim": 128, "dropout": 0.1, "attn_dropout": 0.0,
             "embed_dropout": 0.1, "max_bins": 64, "behavior_weight": 2.0},
}


class _Stitch(nn.Module):
    """NEDS's per-session stitcher: Linear(n, mult * n) -> softsign -> Linear(mult * n, dim)."""

    def __init__(self, n_in: int, dim: int, mult: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, mult * n_in), nn.Softsign(), nn.Linear(mult * n_in, dim))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _key(session: str) -> str:
    # nn.ModuleDict keys may not contain "."; session ids are kept otherwise as they are.
    return "s:" + session.replace(".", "_")


class NEDS(nn.Module):
    """NEDS multimodal masked model.

    Args:
        config: architecture.
        session_units: session id -> number of units (each session has its own stitchers).
        behavior_dim: width D of the behaviour series.

    Shapes:
        forward(binned batch: ``values`` [B, T, N] counts, ``targets[behavior_key]`` [B, T, D] at
        the bin centres, mode) -> ``log_rates`` [B, T, N] and ``behavior`` [B, T, D], plus the
        loss masks. ``mode`` is one of :data:`SCHEMES`; None samples one per sample in training
        and means ``decoding`` in eval mode.
    """

    def __init__(self, config: NEDSConfig, *, session_units: dict[str, int], behavior_dim: int) -> None:
        super().__init__()
        self.config, self.behavior_dim = config, behavior_dim
        self.session_units = dict(session_units)
        keys = [_key(s) for s in self.session_units]
        if len(set(keys)) != len(keys):
            raise ValueError(f"session ids collide once '.' becomes '_': {sorted(self.session_units)}")
        self.spike_in, self.spike_out = nn.ModuleDict(), nn.ModuleDict()
        self.behavior_in, self.behavior_out = nn.ModuleDict(), nn.ModuleDict()
        self.session_embedding = KeyedEmbedding(dim=config.dim, keys=())
        for session, n_units in self.session_units.items():
            self._add_stitchers(session, n_units)
        self.modality_embedding = nn.Embedding(2, config.dim)
        self.position = LearnedPositionEmbedding(num_positions=config.max_bins, dim=config.dim)
        self.mask_token = nn.Parameter(torch.randn(config.dim) * 0.02)
        self.embed_dropout = nn.Dropout(config.embed_dropout)
        head_dim = config.dim // config.heads
        rotary = RotaryTimeEmbedding(  # NEDS's RoPE (base 10000 over bin indices), in seconds
            head_dim=head_dim, rotate_dim=head_dim, t_min=2 * math.pi * config.bin_size,
            t_max=2 * math.pi * 1e4 * config.bin_size,
        )  # fmt: skip
        self.encoder = TransformerEncoder(
            dim=config.dim, depth=config.depth, heads=config.heads, ffn_dim=config.ffn_dim, ffn="gelu",
            dropout=config.dropout, rotary=rotary,
            attn_dropout=config.dropout if config.attn_dropout is None else config.attn_dropout,
        )  # fmt: skip

    def _add_stitchers(self, session: str, n_units: int) -> None:
        cfg, key = self.config, _key(session)
        self.spike_in[key] = _Stitch(n_units, cfg.dim, cfg.stitch_mult)
        self.spike_out[key] = nn.Linear(cfg.dim, n_units)
        self.behavior_in[key] = _Stitch(self.behavior_dim, cfg.dim, cfg.stitch_mult)
        self.behavior_out[key] = nn.Linear(cfg.dim, self.behavior_dim)
        self.session_embedding.extend([session])

    def add_session(self, recording: Recording) -> None:
        """New stitchers and session embedding for ``recording`` (fine-tune them before use).

        The new session is not in the ``session_units`` a checkpoint was built with: save the
        adapted model's state dict with its new ``session_units``.
        """
        if recording.session in self.session_units:
            raise ValueError(f"session {recording.session!r} is already known to this NEDS model")
        self.session_units[recording.session] = recording.n_units
        self._add_stitchers(recording.session, recording.n_units)
        self.to(self.mask_token.device)  # the new stitchers join the model's device

    def freeze_for_recalibration(self, recording: Recording) -> list[nn.Parameter]:
        """Train only ``recording``'s stitchers (spikes and behaviour, in and out) and session embedding, the shared
        transformer frozen; returns the parameters to optimise."""
        if recording.session not in self.session_units:
            raise KeyError(f"session {recording.session!r} has no stitchers; call add_session(recording) first")
        key = _key(recording.session)
        stitchers = [table[key] for table in (self.spike_in, self.spike_out, self.behavior_in, self.behavior_out)]
        return train_only(self, stitchers, [(self.session_embedding, [recording.session])])

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch, mode: str | None = None) -> dict[str, Tensor]:
        counts, observed, target, target_valid, step_valid = self._inputs(batch)
        b_size, n_steps = step_valid.shape
        modes = self._modes(b_size, mode)
        spike_hidden, behavior_hidden = self._masks(modes, step_valid)  # [B, T] each
        tokens = torch.cat([self._stitch(self.spike_in, batch.sessions, counts * observed),
                            self._stitch(self.behavior_in, batch.sessions, target)], 1)  # [B, 2T, dim]
        hidden = torch.cat([spike_hidden, behavior_hidden], 1)  # [B, 2T]
        tokens = torch.where(hidden[..., None], self.mask_token, self.embed_dropout(tokens))
        x = tokens + self._embeddings(batch.sessions, n_steps)
        times = batch.timestamps.float()  # [B, T] bin centres
        h = self.encoder(x, key_mask=torch.cat([step_valid, step_valid], 1), times=torch.cat([times, times], 1))
        log_rates = self._stitch(self.spike_out, batch.sessions, h[:, :n_steps], width=counts.shape[-1])
        unit_valid = self._unit_valid(batch, counts.shape[-1])  # [B, N]
        spike_scored = (spike_hidden[..., None] & observed) | (~observed & unit_valid[:, None])  # held-out always
        return {
            "log_rates": log_rates, "counts": counts,
            "spike_mask": spike_scored & unit_valid[:, None] & step_valid[..., None],
            "behavior": self._stitch(self.behavior_out, batch.sessions, h[:, n_steps:]),
            "behavior_target": target, "behavior_mask": behavior_hidden[..., None] & target_valid,
            "behavior_weight": h.new_tensor(self.config.behavior_weight),
        }  # fmt: skip

    def _inputs(self, batch: Batch) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        if batch.packed:
            raise ValueError("NEDS reads padded binned batches (collate with pack=False)")
        key = self.config.behavior_key
        counts = batch.values.float()  # [B, T, N]
        if counts.ndim != 3 or key not in batch.targets or batch.query_timestamps.shape[1] != counts.shape[1]:
            raise ValueError(
                f"NEDS reads BinnedTokenizer count vectors with '{key}' targets at the bins (query='bins')"
            )
        if counts.shape[1] > self.config.max_bins:
            raise ValueError(f"window of {counts.shape[1]} bins exceeds NEDS max_bins={self.config.max_bins}")
        unit_valid = self._unit_valid(batch, counts.shape[-1])
        heldout = torch.zeros_like(unit_valid)
        heldout[unit_valid] = torch.as_tensor(batch.unit_extras["heldout"], dtype=torch.bool, device=counts.device)
        observed = (unit_valid & ~heldout)[:, None, :].expand_as(counts)  # [B, T, N] the model may see
        target = batch.targets[key]  # [B, T, D]
        step_valid = batch.mask & batch.query_mask
        target_valid = torch.isfinite(target) & step_valid[..., None]
        return counts, observed, torch.nan_to_num(target), target_valid, step_valid

    @staticmethod
    def _unit_valid(batch: Batch, width: int) -> Tensor:
        n_units = batch.unit_offsets.diff().to(batch.mask.device)  # [B]
        return torch.arange(width, device=n_units.device)[None, :] < n_units[:, None]  # [B, N]

    def _modes(self, b_size: int, mode: str | None) -> list[str]:
        if mode is not None:
            if mode not in SCHEMES:
                raise ValueError(f"NEDS mode must be one of {SCHEMES}, got {mode!r}")
            return [mode] * b_size
        if not self.training:
            return ["decoding"] * b_size
        picks = torch.randint(len(self.config.schemes), (b_size,)).tolist()
        return [self.config.schemes[i] for i in picks]

    def _masks(self, modes: list[str], step_valid: Tensor) -> tuple[Tensor, Tensor]:
        """Hidden (to be predicted) time steps of each modality per sample, as NEDS's mask map."""
        random = random_token_mask(
            step_valid[..., None].float(), self.config.mask_ratio, zero_ratio=1.0, random_ratio=0.0,
            valid=step_valid[..., None],
        ).mask[..., 0]  # [B, T]  # fmt: skip
        none, every = torch.zeros_like(step_valid), step_valid
        table = {
            "encoding": (every, none), "decoding": (none, every), "self-spike": (random, none),
            "self-behavior": (none, random), "random_token": (random, random),
        }  # fmt: skip
        spike = torch.stack([table[m][0][i] for i, m in enumerate(modes)])
        behavior = torch.stack([table[m][1][i] for i, m in enumerate(modes)])
        return spike & step_valid, behavior & step_valid

    def _stitch(self, table: nn.ModuleDict, sessions: Sequence[str], x: Tensor, width: int | None = None) -> Tensor:
        """Apply each sample's session module; inputs / outputs beyond a session's units are padding."""
        out = None
        names = np.asarray(sessions)
        for session in dict.fromkeys(sessions):
            key = _key(session)
            if key not in table:
                raise KeyError(f"NEDS has no stitcher for session {session!r}; call model.add_session(recording)")
            rows = torch.as_tensor(np.flatnonzero(names == session), device=x.device)
            module = table[key]
            first = module.net[0] if isinstance(module, _Stitch) else None
            part = module(x[rows][..., : first.in_features] if first is not None else x[rows])
            if out is None:
                out = x.new_zeros(x.shape[0], x.shape[1], width or part.shape[-1])
            out[rows, :, : part.shape[-1]] = part
        return out

    def _embeddings(self, sessions: Sequence[str], n_steps: int) -> Tensor:
        positions = self.position(torch.arange(n_steps, device=self.mask_token.device))  # [T, dim]
        modality = self.modality_embedding.weight[:, None, :]  # [2, 1, dim]
        per_token = (modality + positions[None]).flatten(0, 1)  # [2T, dim]: spikes then behaviour
        return per_token[None] + self.session_embedding.embed(list(sessions))[:, None, :]  # [B, 2T, dim]


def neds_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Poisson NLL on hidden spike entries (and held-out units) + weighted MSE on hidden behaviour."""
    spike = poisson_nll(outputs["log_rates"], outputs["counts"], outputs["spike_mask"])
    behavior = mse(outputs["behavior"], outputs["behavior_target"], outputs["behavior_mask"])
    loss = spike + outputs["behavior_weight"] * behavior
    return loss, {"spike_nll": spike.detach(), "behavior_mse": behavior.detach()}


def _sizes(recordings: Sequence[Recording], config: NEDSConfig) -> dict[str, Any]:
    width = behavior_width(recordings, config.behavior_key, "NEDS")
    return {"session_units": {r.session: r.n_units for r in recordings}, "behavior_dim": width}


def _tokenizer(config: NEDSConfig, **overrides: Any) -> BinnedTokenizer:
    return BinnedTokenizer(
        BinnedConfig(**{"query": "bins", "bin_size": config.bin_size, "behavior_keys": (config.behavior_key,),
                        **overrides})
    )


SPEC = register(
    ModelSpec(
        name="neds", config_cls=NEDSConfig, model_cls=NEDS, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=neds_objective, sizes_from_data=_sizes, task="decoding", pack=False,
        causal=False,  # bidirectional masked modelling over the whole window
    )
)
