"""NDT3 (Ye et al. 2025): one causal multimodal sequence of spike patches and behaviour tokens.

Every 20 ms step contributes, in this order, an optional *phase* token (NDT3's constraint
tokens, here the task phase), one token per 32-neuron *patch* of spike counts, an optional
*return* token, and one token per *behaviour* dimension. The flat sequence (session / subject
context tokens first) runs through a decoder-only transformer (rotary time, SwiGLU, QK-norm,
pre-norm, no biases) with a causal mask, and every token is predicted from the tokens before
it (NDT3's ``roll(1)`` with a start-of-sequence token): spike counts as 22 classes with a
Poisson-softened cross-entropy, behaviour with MSE, returns as classes.

Behaviour inputs: in training a random fraction of behaviour *inputs* is blanked (NDT3's
``kinematic_token_maskout`` with the "random" schedule); in eval mode all of them are blanked
(NDT3's FALCON decoder, ``mask_kin_prior=True``). A decoded behaviour at step ``t`` therefore
depends only on spikes (and phase / return) up to ``t``: it is an online, causal decoder.

Held-out units are zero-filled in the patch grid (a dedicated "unobserved" count embedding)
and predicted like any other channel, so ``log_rates`` (from the expected count of the class
distribution) give causal co-smoothing scores.

Source: joel99/ndt3 @472466a: ``model.py`` (``assemble_pipeline``, kinematic maskout),
``ndt3_slim.py`` (modality order, ``mask_kin_prior``), ``components.py``
(``StreamlinedTransformer``), ``config/config_base.py``; MODELS.md (NDT3 facts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, NamedTuple, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from spikefm.data.recording import Recording, Window
from spikefm.models._shared import behavior_width, train_only
from spikefm.models.registry import ModelSpec, register
from spikefm.nn.attention import causal_mask
from spikefm.nn.identity import ContextTokens
from spikefm.nn.position import RotaryTimeEmbedding
from spikefm.nn.transformer import TransformerEncoder
from spikefm.objectives.losses import count_cross_entropy, expected_count_from_logits, mse
from spikefm.tokenize.base import Batch, Tokens
from spikefm.tokenize.binned import PatchConfig, PatchTokenizer

__all__ = ["NDT3Config", "NDT3", "NDT3Tokenizer", "ndt3_objective", "PRESETS"]

_ZERO_RATE = 1e-9  # NLB's floor for a zero expected count


@dataclass
class NDT3Config:
    """NDT3 architecture, tokens and training-time behaviour maskout.

    Attributes:
        dim: token width (a multiple of ``neurons_per_patch``: each channel's count embedding is
            ``dim / neurons_per_patch`` wide and a patch concatenates them).
        depth, heads: transformer layers and attention heads.
        ffn_factor: SwiGLU inner width as a multiple of ``dim``.
        dropout: residual-branch dropout.
        bin_size: seconds per step.
        neurons_per_patch: units per spike token.
        n_classes: count classes (counts >= ``n_classes - 1`` share the last class).
        max_patches: spike tokens per step the space embedding reserves room for.
        context_seconds: longest window the model accepts.
        n_phases: phase classes (0 disables phase tokens). Phase = 0 outside a trial, 1 in a
            trial before ``move_onset_time``, 2 after it.
        n_returns: return classes (0 disables return tokens); class 0 means "unknown".
        return_key: behaviour series holding the return-to-go (rounded to classes); windows
            without it get the unknown class.
        behavior_key: behaviour series decoded.
        behavior_maskout: (low, high): each training batch blanks a fraction drawn uniformly in
            [low, high] of its behaviour inputs (eval blanks all of them).
        behavior_weight, return_weight: loss weights relative to the spike cross-entropy.
    """

    dim: int = 1024
    depth: int = 6
    heads: int = 8
    ffn_factor: float = 1.0
    dropout: float = 0.1
    bin_size: float = 0.02
    neurons_per_patch: int = 32
    n_classes: int = 22
    max_patches: int = 10
    context_seconds: float = 2.0
    n_phases: int = 3
    n_returns: int = 128
    return_key: str = "return"
    behavior_key: str = "hand_vel"
    behavior_maskout: tuple[float, float] = (0.1, 0.9)
    behavior_weight: float = 1.0
    return_weight: float = 0.1

    def __post_init__(self) -> None:
        self.behavior_maskout = tuple(float(v) for v in self.behavior_maskout)
        if min(self.dim, self.depth, self.heads, self.neurons_per_patch, self.max_patches) < 1:
            raise ValueError("NDT3Config: dim, depth, heads, neurons_per_patch and max_patches must be >= 1")
        if self.dim % self.neurons_per_patch or self.dim % self.heads or (self.dim // self.heads) % 2:
            raise ValueError(
                f"NDT3Config: dim ({self.dim}) must be a multiple of neurons_per_patch ({self.neurons_per_patch}) "
                f"and of heads ({self.heads}) with an even head width (rotary)"
            )
        if self.n_classes < 2 or self.n_phases < 0 or self.n_returns < 0:
            raise ValueError("NDT3Config: n_classes must be >= 2, n_phases and n_returns >= 0")
        low, high = self.behavior_maskout
        if len(self.behavior_maskout) != 2 or not 0.0 <= low <= high <= 1.0:
            raise ValueError(f"NDT3Config.behavior_maskout must be (low, high) in [0, 1], got {self.behavior_maskout}")
        if not (self.bin_size > 0 and self.context_seconds > 0):
            raise ValueError("NDT3Config: bin_size and context_seconds must be > 0")


PRESETS: dict[str, dict[str, Any]] = {
    # MODELS.md / NDT3 paper: 45M = 1024 wide x 6 layers x 8 heads; 20 ms bins, 32-neuron patches,
    # 22 count classes, 2 s context. ffn_factor 1: SwiGLU inner width = dim (6 x (4 + 3) x 1024^2 = 44M,
    # the published 45M). max_patches 10 (ndt3_slim.get_modality_dimensonality: "max of 10 spike dims").
    # behavior_maskout: config_base kinematic_token_maskout_start 0.9 with the "random" schedule; the low
    # end (0.1), dropout 0.1 and the loss weights are our choices (not read from the v5 recipe).
    # n_returns 128: ndt3_slim's return logits have 129 entries (128 returns + unknown).
    "ndt3_45m": {},
    # 350M = 2048 x 12 x 16 (MODELS.md).
    "ndt3_350m": {"dim": 2048, "depth": 12, "heads": 16},
    # CPU-sized. Phase and return tokens off so decoding scores compare with the spikes-only ridge.
    "tiny": {"dim": 64, "depth": 2, "heads": 4, "neurons_per_patch": 16, "dropout": 0.1, "n_phases": 0,
             "n_returns": 0, "behavior_maskout": (0.5, 1.0), "behavior_weight": 5.0},
}


# ---------------------------------------------------------------------------- tokenizer
class NDT3Tokenizer:
    """NDT3 patches (:class:`PatchTokenizer`, 1 bin per patch, count classes) plus per-token
    ``extras["phase"]`` and ``extras["return_class"]`` of the patch's step.

    What it loses: what :class:`PatchTokenizer` loses; the return is rounded to whole classes.
    """

    def __init__(self, patch: PatchConfig, *, return_key: str = "return", n_returns: int = 0) -> None:
        if patch.bins_per_patch != 1 or patch.query != "bins" or patch.n_classes is None:
            raise ValueError("NDT3 reads one-bin patches with count classes and query='bins'")
        self.config, self.patch = patch, PatchTokenizer(patch)
        self.return_key, self.n_returns = return_key, n_returns

    def __call__(self, window: Window) -> Tokens:
        tokens = self.patch(window)
        centres = tokens.timestamps  # [L] the step centre of every patch
        extras = {**tokens.extras, "phase": _phase(window, centres), "return_class": self._returns(window, centres)}
        return replace(tokens, extras=extras)

    def _returns(self, window: Window, centres: np.ndarray) -> np.ndarray:
        series = window.recording.behavior.get(self.return_key)
        if self.n_returns == 0 or series is None or series.timestamps.size == 0:
            return np.zeros(centres.shape, np.int64)
        value = np.interp(centres, series.timestamps, np.asarray(series.values[:, 0], np.float64))
        return 1 + np.clip(np.rint(value), 0, self.n_returns - 1).astype(np.int64)


def _phase(window: Window, centres: np.ndarray) -> np.ndarray:
    """0 outside trials, 1 inside a trial before its ``move_onset_time``, 2 from it on."""
    trials = window.recording.trials
    phase = np.zeros(centres.shape, np.int64)
    if trials is None:
        return phase
    onsets = trials.columns.get("move_onset_time")
    for k in range(len(trials)):
        inside = (centres >= trials.start[k]) & (centres < trials.end[k])
        after = centres >= onsets[k] if onsets is not None and np.isfinite(onsets[k]) else np.zeros_like(inside)
        phase[inside] = np.where(after[inside], 2, 1)
    return phase


# ---------------------------------------------------------------------------- model
class _Steps(NamedTuple):
    """The batch's patches on a [B, S steps, G groups, P channels] grid."""

    counts: Tensor  # float [B, S, G, P] observed counts (0 on padding)
    classes: Tensor  # long [B, S, G, P] the tokenizer's count classes
    observed: Tensor  # bool [B, S, G, P] real channel the model may see (not held-out, not padding)
    real: Tensor  # bool [B, S, G, P] real channel (scored)
    group_valid: Tensor  # bool [B, S, G]
    step_valid: Tensor  # bool [B, S]
    times: Tensor  # float [B, S] step centres (s)
    phase: Tensor  # long [B, S]
    returns: Tensor  # long [B, S]
    n_units: Tensor  # long [B]


class NDT3(nn.Module):
    """NDT3 decoder and causal spike model.

    Args:
        config: architecture.
        sessions: initial session vocabulary.
        subjects: session -> subject id (the subject context token).
        behavior_dim: decoded behaviour width D.

    Shapes:
        forward(patch batch, padded) -> ``behavior`` [B, S, D] at the bin centres, ``log_rates``
        [B, S, U] (U = the batch's most units; unit order), the observed ``counts`` [B, S, U], and the
        objective's logits / targets / masks.
    """

    def __init__(self, config: NDT3Config, *, sessions: Sequence[str], subjects: dict[str, str], behavior_dim: int):
        super().__init__()
        self.config, self.behavior_dim = config, behavior_dim
        self.subjects = dict(subjects)
        dim, n_patch = config.dim, config.neurons_per_patch
        self.space_size = 1 + config.max_patches + 1 + behavior_dim  # phase | patches | return | behaviour
        self.spike_embed = nn.Embedding(config.n_classes + 1, dim // n_patch)  # last row: unobserved channel
        self.behavior_in = nn.Parameter(torch.randn(behavior_dim, 2, dim) * 0.02)  # per dim: value weight, bias
        self.phase_embed = nn.Embedding(config.n_phases, dim) if config.n_phases else None
        self.return_embed = nn.Embedding(config.n_returns + 1, dim) if config.n_returns else None
        self.space_embed = nn.Embedding(self.space_size, dim)
        self.start_of_sequence = nn.Parameter(torch.randn(dim) * 0.02)
        self.context = ContextTokens(
            dim=dim, fields=("session", "subject"),
            keys={"session": list(sessions), "subject": sorted(set(self.subjects.values()))},
        )  # fmt: skip
        head_dim = dim // config.heads
        rotary = RotaryTimeEmbedding(  # standard RoPE (base 10000 over steps), in seconds
            head_dim=head_dim, rotate_dim=head_dim, t_min=2 * math.pi * config.bin_size,
            t_max=2 * math.pi * 1e4 * config.bin_size,
        )  # fmt: skip
        self.encoder = TransformerEncoder(
            dim=dim, depth=config.depth, heads=config.heads, ffn_dim=round(dim * config.ffn_factor), ffn="swiglu",
            norm="layernorm", qk_norm=True, bias=False, dropout=config.dropout, rotary=rotary,
        )  # fmt: skip
        self.spike_head = nn.Linear(dim, n_patch * config.n_classes, bias=False)
        self.behavior_head = nn.Linear(dim, 1, bias=False)
        self.return_head = nn.Linear(dim, config.n_returns + 1, bias=False) if config.n_returns else None

    # ------------------------------------------------------------------ forward
    def forward(self, batch: Batch) -> dict[str, Tensor]:
        steps = self._steps(batch)
        target, target_valid = self._behavior(batch, steps)  # [B, S, D] each
        content, valid, space = self._contents(steps, target, target_valid)  # [B, S, K, dim], [B, S, K], [K]
        hidden = self._backbone(batch, content, valid, space, steps.times)  # [B, S, K, dim]
        return self._heads(hidden, steps, target, target_valid)

    def _steps(self, batch: Batch) -> _Steps:
        if batch.packed or "patch_time" not in batch.extras:
            raise ValueError("NDT3 reads padded patch batches from NDT3Tokenizer (collate with pack=False)")
        if float(batch.duration.max()) > self.config.context_seconds + 1e-6:
            raise ValueError(f"window of {float(batch.duration.max()):.2f} s exceeds NDT3's context of "
                             f"{self.config.context_seconds} s")
        n_patch = self.config.neurons_per_patch
        if batch.values.shape[-1] != n_patch:
            raise ValueError(f"NDT3 was built for {n_patch}-neuron patches, got patches of {batch.values.shape[-1]}")
        mask, time, group = batch.mask, batch.extras["patch_time"], batch.extras["patch_group"]
        b_size, n_steps, n_groups = mask.shape[0], int(time[mask].max()) + 1, int(group[mask].max()) + 1
        if n_groups > self.config.max_patches:
            raise ValueError(f"{n_groups} patches per step exceed max_patches={self.config.max_patches}")
        rows = torch.arange(b_size, device=mask.device)[:, None].expand_as(mask)[mask]
        at = (rows, time[mask], group[mask])
        counts = batch.values.new_zeros(b_size, n_steps, n_groups, n_patch).float()
        counts[at] = batch.values[mask].float()
        classes = torch.zeros_like(counts, dtype=torch.long)
        classes[at] = batch.extras["count_class"][mask].long()
        real = torch.zeros_like(counts, dtype=torch.bool)
        real[at] = batch.extras["channel_mask"][mask]
        group_valid = torch.zeros(b_size, n_steps, n_groups, dtype=torch.bool, device=mask.device)
        group_valid[at] = True
        per_step = torch.zeros(3, b_size, n_steps, device=mask.device)  # times, phase, return
        for i, value in enumerate((batch.timestamps, batch.extras["phase"], batch.extras["return_class"])):
            per_step[i][rows, time[mask]] = value[mask].float()
        heldout = self._heldout_grid(batch, n_groups)  # [B, G, P]
        n_units = batch.unit_offsets.diff().to(mask.device)
        return _Steps(counts, classes, real & ~heldout[:, None], real, group_valid, group_valid.any(-1), per_step[0],
                      per_step[1].long(), per_step[2].long(), n_units)

    def _heldout_grid(self, batch: Batch, n_groups: int) -> Tensor:
        device = batch.mask.device
        heldout = torch.as_tensor(batch.unit_extras["heldout"], dtype=torch.bool, device=device)  # [sum U]
        offsets = batch.unit_offsets.to(device)
        sample = torch.repeat_interleave(torch.arange(batch.batch_size, device=device), offsets.diff())  # [sum U]
        position = torch.arange(heldout.numel(), device=device) - offsets[:-1][sample]
        grid = torch.zeros(batch.batch_size, n_groups * self.config.neurons_per_patch, dtype=torch.bool, device=device)
        grid[sample, position] = heldout
        return grid.view(batch.batch_size, n_groups, -1)  # [B, G, P]

    def _behavior(self, batch: Batch, steps: _Steps) -> tuple[Tensor, Tensor]:
        key = self.config.behavior_key
        if key not in batch.targets or batch.query_timestamps.shape[1] != steps.times.shape[1]:
            raise ValueError(f"NDT3 needs '{key}' targets at every bin centre (NDT3Tokenizer, query='bins')")
        target = batch.targets[key]  # [B, S, D]
        valid = torch.isfinite(target) & batch.query_mask[..., None] & steps.step_valid[..., None]
        return torch.nan_to_num(target), valid

    def _contents(self, steps: _Steps, target: Tensor, target_valid: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """What each slot of each step holds as input, before the shift to next-token inputs."""
        cfg, n_groups = self.config, steps.counts.shape[2]
        classes = steps.classes.clamp(max=cfg.n_classes - 1).masked_fill(~steps.observed, cfg.n_classes)
        parts = [self.spike_embed(classes).flatten(-2)]  # [B, S, G, dim]
        valids, spaces = [steps.group_valid], [1 + torch.arange(n_groups)]
        if self.phase_embed is not None:
            parts.insert(0, self.phase_embed(steps.phase)[:, :, None])
            valids.insert(0, steps.step_valid[..., None])
            spaces.insert(0, torch.zeros(1, dtype=torch.long))
        if self.return_embed is not None:
            parts.append(self.return_embed(steps.returns)[:, :, None])
            valids.append(steps.step_valid[..., None])
            spaces.append(torch.tensor([1 + cfg.max_patches]))
        keep = target_valid & (torch.rand_like(target) >= self._maskout_ratio())  # blank behaviour inputs
        parts.append((target[..., None] * self.behavior_in[:, 0] + self.behavior_in[:, 1]) * keep[..., None])
        valids.append(steps.step_valid[..., None].expand(-1, -1, self.behavior_dim))
        spaces.append(2 + cfg.max_patches + torch.arange(self.behavior_dim))
        return torch.cat(parts, 2), torch.cat(valids, 2), torch.cat(spaces).to(steps.counts.device)

    def _maskout_ratio(self) -> float:
        if not self.training:
            return 1.0  # decode from neural data alone (NDT3 mask_kin_prior)
        low, high = self.config.behavior_maskout
        return float(low + (high - low) * torch.rand(()))

    def _backbone(self, batch: Batch, content: Tensor, valid: Tensor, space: Tensor, times: Tensor) -> Tensor:
        b_size, n_steps, n_slots, dim = content.shape
        flat, flat_valid = content.reshape(b_size, -1, dim), valid.reshape(b_size, -1)  # [B, M, dim], [B, M]
        order = torch.argsort((~flat_valid).to(torch.int8), dim=1, stable=True)  # real tokens first, in order
        x = flat.gather(1, order[..., None].expand(-1, -1, dim))
        slot_space = space[None, None].expand(b_size, n_steps, -1).reshape(b_size, -1).gather(1, order)
        slot_time = times[..., None].expand(-1, -1, n_slots).reshape(b_size, -1).gather(1, order)
        x = torch.cat([self.start_of_sequence.expand(b_size, 1, dim), x[:, :-1]], 1)  # input = previous token
        x = x + self.space_embed(slot_space)
        context = self.context({"session": batch.sessions, "subject": self._subject_keys(batch.sessions)})
        n_ctx = context.shape[1]
        h = self.encoder(
            torch.cat([context, x], 1),
            key_mask=torch.cat([flat_valid.new_ones(b_size, n_ctx), flat_valid.gather(1, order)], 1),
            attn_mask=causal_mask(n_ctx + x.shape[1], device=x.device),
            times=torch.cat([slot_time.new_zeros(b_size, n_ctx), slot_time], 1),
        )[:, n_ctx:]  # [B, M, dim]
        out = torch.zeros_like(flat).scatter(1, order[..., None].expand(-1, -1, dim), h)
        return out.view(b_size, n_steps, n_slots, dim)

    def _subject_keys(self, sessions: Sequence[str]) -> list[str]:
        missing = sorted({s for s in sessions if s not in self.subjects})
        if missing:
            raise KeyError(f"NDT3 has no context for session(s) {missing}; call model.add_session(recording) first")
        return [self.subjects[s] for s in sessions]

    def _heads(self, hidden: Tensor, steps: _Steps, target: Tensor, target_valid: Tensor) -> dict[str, Tensor]:
        cfg, n_groups = self.config, steps.counts.shape[2]
        first = 1 if self.phase_embed is not None else 0
        logits = self.spike_head(hidden[:, :, first : first + n_groups])  # [B, S, G, P * C]
        logits = logits.unflatten(-1, (cfg.neurons_per_patch, cfg.n_classes))  # [B, S, G, P, C]
        behavior = self.behavior_head(hidden[:, :, -self.behavior_dim :]).squeeze(-1)  # [B, S, D]
        n_units = int(steps.n_units.max())
        expected = expected_count_from_logits(logits.detach()).flatten(2)[..., :n_units]  # [B, S, U]
        out = {
            "behavior": behavior, "behavior_target": target, "behavior_mask": target_valid,
            "spike_logits": logits, "spike_counts": steps.counts, "spike_mask": steps.real,
            "log_rates": expected.clamp_min(_ZERO_RATE).log(), "counts": steps.counts.flatten(2)[..., :n_units],
            "behavior_weight": hidden.new_tensor(cfg.behavior_weight),
        }  # fmt: skip
        if self.return_head is not None:
            out["return_logits"] = self.return_head(hidden[:, :, first + n_groups])  # [B, S, R + 1]
            out["return_target"], out["return_mask"] = steps.returns, (steps.returns > 0) & steps.step_valid
            out["return_weight"] = hidden.new_tensor(cfg.return_weight)
        return out

    # ------------------------------------------------------------------ new sessions
    def add_session(self, recording: Recording) -> None:
        """Add context rows (session, and subject if new) for ``recording``'s session."""
        subject = recording.subject or ""
        self.subjects[recording.session] = subject
        self.context.tables["session"].extend([recording.session])
        self.context.tables["subject"].extend([subject])

    def freeze_for_recalibration(self, recording: Recording) -> list[nn.Parameter]:
        """Train only ``recording``'s context rows (session; subject too if it is new); returns them.

        Give the returned parameters ``weight_decay=0`` (frozen rows would otherwise decay);
        :func:`spikefm.eval.context_adaptation.adapt_context` drives this.
        """
        if recording.session not in self.subjects:
            self.add_session(recording)
        rows = [(self.context.tables["session"], [recording.session])]
        shared = [s for s, subj in self.subjects.items() if subj == self.subjects[recording.session]]
        if shared == [recording.session]:  # a new subject: its row is learned too
            rows.append((self.context.tables["subject"], [self.subjects[recording.session]]))
        return train_only(self, [], rows)

    def get_extra_state(self) -> dict[str, Any]:
        return {"subjects": dict(self.subjects)}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.subjects = dict(state["subjects"])


def ndt3_objective(outputs: dict[str, Tensor], batch: Batch) -> tuple[Tensor, dict[str, Tensor]]:
    """Poisson-softened count cross-entropy on every real channel + weighted behaviour MSE
    (+ return cross-entropy where the return is known)."""
    spike = count_cross_entropy(outputs["spike_logits"], outputs["spike_counts"], outputs["spike_mask"])
    behavior = mse(outputs["behavior"], outputs["behavior_target"], outputs["behavior_mask"])
    loss = spike + outputs["behavior_weight"] * behavior
    metrics = {"spike_ce": spike.detach(), "behavior_mse": behavior.detach()}
    if "return_logits" in outputs:
        mask = outputs["return_mask"]
        per_step = nn.functional.cross_entropy(
            outputs["return_logits"].flatten(0, 1), outputs["return_target"].flatten(), reduction="none"
        ).view_as(mask)
        ret = (per_step * mask).sum() / mask.sum().clamp(min=1)
        loss = loss + outputs["return_weight"] * ret
        metrics["return_ce"] = ret.detach()
    return loss, metrics


def _sizes(recordings: Sequence[Recording], config: NDT3Config) -> dict[str, Any]:
    width = behavior_width(recordings, config.behavior_key, "NDT3")
    return {
        "sessions": [r.session for r in recordings],
        "subjects": {r.session: r.subject or "" for r in recordings},
        "behavior_dim": width,
    }


def _tokenizer(config: NDT3Config, **overrides: Any) -> NDT3Tokenizer:
    patch = PatchConfig(**{
        "query": "bins", "bin_size": config.bin_size, "neurons_per_patch": config.neurons_per_patch,
        "bins_per_patch": 1, "n_classes": config.n_classes, "behavior_keys": (config.behavior_key,), **overrides,
    })  # fmt: skip
    return NDT3Tokenizer(patch, return_key=config.return_key, n_returns=config.n_returns)


SPEC = register(
    ModelSpec(
        name="ndt3", config_cls=NDT3Config, model_cls=NDT3, presets=PRESETS, make_tokenizer=_tokenizer,
        objective=ndt3_objective, sizes_from_data=_sizes, task="decoding", pack=False,
        causal=True,  # one causal sequence: each token attends to earlier tokens only
    )
)
