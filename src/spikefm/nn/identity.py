"""Identity embeddings: growable string-keyed tables, context tokens, prompts, IDEncoder.

Nothing here assumes a fixed neuron count. Units are keyed ``"session/unit"``
(:func:`unit_key`); a new session's units are added with :meth:`KeyedEmbedding.extend` and,
for POYO-style recalibration, trained alone with :meth:`KeyedEmbedding.freeze_except`.
The vocabulary travels in the state dict, so a checkpoint rebuilds the table it was saved with.

The same :class:`KeyedEmbedding` serves brain regions (MtM: ``keys=["CA1", "VISp", ...]``),
modalities (NEDS: ``["spikes", "wheel", "whisker", ...]``) and sessions / subjects / tasks
(:class:`ContextTokens`, NDT2 / NDT3).

>>> table = UnitEmbedding(dim=4, keys=unit_keys("s1", ["a", "b"]))
>>> table.lookup(["s1/b", "s1/a"]).tolist()
[1, 0]
>>> table.extend(unit_keys("s2", ["a"]))
>>> table.freeze_except(unit_keys("s2", ["a"]))
>>> len(table), table.trainable_keys
(3, ['s2/a'])

Shape legend: B batch, U units, R calibration trials, T bins, D embedding width.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "unit_key",
    "unit_keys",
    "KeyedEmbedding",
    "fix_vocabularies",
    "UnitEmbedding",
    "ContextTokens",
    "PromptEmbedding",
    "MTM_PROMPTS",
    "IDEncoder",
]

MTM_PROMPTS = ("neuron", "causal", "intra-region", "inter-region")
_CACHE_SIZE = 256


def unit_key(session: str, unit: str | int) -> str:
    """The table key of one unit: ``"session/unit"``."""
    return f"{session}/{unit}"


def unit_keys(session: str, units: Iterable[str | int]) -> list[str]:
    """Keys for many units of one session, in order."""
    return [unit_key(session, u) for u in units]


class KeyedEmbedding(nn.Module):
    """An embedding table whose rows are addressed by string keys and can grow.

    Args:
        dim: embedding width D.
        keys: initial vocabulary, in row order; duplicates are an error.
        init_std: rows start as N(0, init_std^2).
        capacity: rows to allocate up front (at least ``len(keys)``); spare rows are taken by later keys.

    Shapes:
        forward(index [...] long) -> [..., D]; ``embed(keys)`` -> [len(keys), D].

    Growth past the table's rows replaces the ``weight`` parameter: build (or rebuild) the optimizer
    after such an :meth:`extend`. A DDP-wrapped model cannot survive a replaced parameter, so for
    multi-process training either build the table with every key first and call :meth:`fix` (then a
    growing ``extend`` raises instead of silently desynchronising ranks), or pre-size it with
    :meth:`reserve` / ``capacity``: ``extend`` then hands out reserved rows in place (same parameter,
    same shape, rows initialised identically on every rank at construction). :meth:`freeze_except` zeroes the gradient of every other row (read through
    ``forward`` / ``embed``); with plain SGD / Adam those rows then stay put, but decoupled weight decay (AdamW) still
    shrinks them, so give this table ``weight_decay=0`` while recalibrating.
    """

    def __init__(self, *, dim: int, keys: Sequence[str] = (), init_std: float = 0.02, capacity: int = 0) -> None:
        super().__init__()
        self.dim, self.init_std = dim, init_std
        self._vocab: dict[str, int] = {}
        self._cache: dict[tuple[str, ...], Tensor] = {}
        self._trainable: set[str] | None = None
        self._mask: Tensor | None = None
        self._fixed = False
        self.weight = nn.Parameter(torch.empty(0, dim))
        self.extend(keys)
        self.reserve(capacity)

    # ------------------------------------------------------------------ vocabulary

    @property
    def keys(self) -> list[str]:
        """The vocabulary in row order."""
        return list(self._vocab)

    @property
    def capacity(self) -> int:
        """Rows allocated (``len(self)`` used, the rest reserved for later keys)."""
        return int(self.weight.shape[0])

    @property
    def trainable_keys(self) -> list[str] | None:
        """Keys whose rows receive gradient, or ``None`` when every row does."""
        return None if self._trainable is None else [k for k in self._vocab if k in self._trainable]

    def __len__(self) -> int:
        return len(self._vocab)

    def extra_repr(self) -> str:
        frozen = "" if self._trainable is None else f", trainable={len(self._trainable)}"
        return f"keys={len(self._vocab)}, dim={self.dim}{frozen}"

    def __contains__(self, key: object) -> bool:
        return key in self._vocab

    def extend(self, keys: Iterable[str]) -> None:
        """Append rows for ``keys`` not yet in the table (existing keys are left alone)."""
        new = []
        for key in keys:
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings like 'session/unit', got {type(key).__name__} {key!r}")
            if key not in self._vocab and key not in new:
                new.append(key)
        if not new:
            return
        missing_rows = len(self._vocab) + len(new) - self.capacity
        if missing_rows > 0 and self._fixed:
            raise RuntimeError(
                f"{type(self).__name__} is fixed (e.g. wrapped for DDP) with {self.capacity} rows, {len(self)} used; "
                f"{len(new)} new key(s) such as {new[0]!r} need {missing_rows} more. Build the model with every "
                "session's keys before training, or pre-size the table (reserve(n) / capacity=n) before wrapping."
            )
        if missing_rows > 0:
            self._grow(missing_rows)
        for key in new:
            self._vocab[key] = len(self._vocab)  # reserved rows keep their construction-time values
        self._cache.clear()
        self._mask = None

    def reserve(self, capacity: int) -> None:
        """Allocate rows up to ``capacity`` now, so later :meth:`extend` calls replace no parameter."""
        if capacity > self.capacity:
            if self._fixed:
                raise RuntimeError(f"{type(self).__name__} is fixed; reserve rows before fixing (before DDP wraps it)")
            self._grow(capacity - self.capacity)

    def fix(self) -> None:
        """From now on the parameter is never replaced: an ``extend`` past the reserved rows raises."""
        self._fixed = True

    def unfix(self) -> None:
        """Allow growth again (after DDP training, e.g. to add a new session for fine-tuning)."""
        self._fixed = False

    def _grow(self, n: int) -> None:
        rows = torch.randn(n, self.dim, device=self.weight.device, dtype=self.weight.dtype) * self.init_std
        self._set_weight(torch.cat([self.weight.detach(), rows]))

    def lookup(self, keys: Sequence[str]) -> Tensor:
        """Row indices of ``keys`` as a long tensor on the table's device (cached)."""
        cache_key = tuple(keys)
        index = self._cache.get(cache_key)
        if index is None or index.device != self.weight.device:
            missing = [k for k in cache_key if k not in self._vocab]
            if missing:
                raise KeyError(self._missing_message(missing))
            index = torch.tensor([self._vocab[k] for k in cache_key], dtype=torch.long, device=self.weight.device)
            if len(self._cache) >= _CACHE_SIZE:
                self._cache.pop(next(iter(self._cache)))
            self._cache[cache_key] = index
        return index

    def _missing_message(self, missing: list[str]) -> str:
        sessions = sorted({k.split("/", 1)[0] for k in self._vocab})
        shown = ", ".join(repr(k) for k in missing[:5]) + (f" (+{len(missing) - 5} more)" if len(missing) > 5 else "")
        return (
            f"{len(missing)} key(s) not in the {type(self).__name__} ({len(self)} keys, prefixes {sessions[:10]}): "
            f"{shown}. Add them with table.extend(keys) (then rebuild the optimizer), and call "
            "table.freeze_except(new_keys) to train only the new rows."
        )

    # ------------------------------------------------------------------ training the new rows only

    def freeze_except(self, keys: Iterable[str]) -> None:
        """From now on only rows of ``keys`` get gradient through ``forward`` / ``embed``."""
        keys = set(keys)
        missing = sorted(k for k in keys if k not in self._vocab)
        if missing:
            raise KeyError(self._missing_message(missing))
        self._trainable = keys
        self._mask = None

    def train_only(self, keys: Iterable[str]) -> list[nn.Parameter]:
        """Let only ``keys``' rows receive gradient (the table's weight trainable again, every other row
        frozen); returns the parameters to optimise."""
        self.weight.requires_grad_(True)
        self.freeze_except(keys)
        return [self.weight]

    def unfreeze(self) -> None:
        """Every row gets gradient again."""
        self._trainable = None
        self._mask = None

    def _effective_weight(self) -> Tensor:
        if self._trainable is None:
            return self.weight
        if self._mask is None or self._mask.device != self.weight.device:
            mask = torch.zeros(self.capacity, 1, dtype=torch.bool, device=self.weight.device)
            mask[[self._vocab[k] for k in self._trainable]] = True
            self._mask = mask  # [V, 1]
        # Frozen rows read a detached copy: same values, zero gradient (a gradient mask that
        # survives deepcopy / pickling, unlike a tensor hook).
        return torch.where(self._mask, self.weight, self.weight.detach())

    def _set_weight(self, data: Tensor) -> None:
        self.weight = nn.Parameter(data, requires_grad=self.weight.requires_grad)
        self._cache.clear()
        self._mask = None

    # ------------------------------------------------------------------ state dict carries the vocabulary

    def get_extra_state(self) -> dict[str, Any]:
        return {"keys": self.keys, "trainable": self.trainable_keys}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        keys = list(state["keys"])
        if len(keys) > self.weight.shape[0]:
            raise ValueError(f"state has {len(keys)} keys but weight has only {self.weight.shape[0]} rows")
        self._vocab = {k: i for i, k in enumerate(keys)}
        self._cache.clear()
        self._trainable = None if state.get("trainable") is None else set(state["trainable"])
        self._mask = None

    def _load_from_state_dict(self, state_dict: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        # A checkpoint may hold more (or fewer) rows than this fresh table: resize first so
        # the copy succeeds; set_extra_state then restores the matching vocabulary.
        saved = state_dict.get(prefix + "weight")
        if saved is not None and saved.shape != self.weight.shape and saved.ndim == 2 and saved.shape[1] == self.dim:
            self._set_weight(torch.empty(saved.shape, device=self.weight.device, dtype=self.weight.dtype))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ forward

    def forward(self, index: Tensor) -> Tensor:
        return nn.functional.embedding(index, self._effective_weight())

    def embed(self, keys: Sequence[str]) -> Tensor:
        """Rows for ``keys``: [len(keys), D]."""
        return self(self.lookup(keys))


def fix_vocabularies(module: nn.Module, fixed: bool = True) -> int:
    """:meth:`~KeyedEmbedding.fix` (or ``unfix``) every keyed table in ``module``; returns how many.

    Call before a DDP strategy wraps the model, so a vocabulary that would grow after wrapping fails
    loudly instead of replacing a parameter DDP no longer tracks.
    """
    tables = [m for m in module.modules() if isinstance(m, KeyedEmbedding)]
    for table in tables:
        table.fix() if fixed else table.unfix()
    return len(tables)


class UnitEmbedding(KeyedEmbedding):
    """Per-unit identity embeddings keyed ``"session/unit"`` (POYO's unit vocabulary).

    Args:
        dim: D.
        keys: initial keys, e.g. ``unit_keys(session, units.ids)``.
        init_std: initial row scale.
    """

    def embed_session(self, session: str, units: Sequence[str | int]) -> Tensor:
        """Rows for ``units`` of ``session``: [len(units), D]."""
        return self.embed(unit_keys(session, units))


class ContextTokens(nn.Module):
    """One token per context field (session, subject, task, ...), each from a growable table.

    NDT2 prepends session and subject (optionally task) tokens; NDT3 adds more. Each field
    has its own :class:`KeyedEmbedding` (``self.tables[field]``), so ``extend`` and
    ``freeze_except`` work per field.

    Args:
        dim: D.
        fields: field names in token order, e.g. ``("session", "subject")``.
        keys: optional initial vocabulary per field.

    Shapes:
        forward({field: [B] string keys}) -> [B, len(fields), D]
    """

    def __init__(self, *, dim: int, fields: Sequence[str], keys: Mapping[str, Sequence[str]] | None = None) -> None:
        super().__init__()
        keys = keys or {}
        unknown = set(keys) - set(fields)
        if unknown:
            raise ValueError(f"keys given for unknown fields {sorted(unknown)}; fields are {list(fields)}")
        self.fields = tuple(fields)
        self.tables = nn.ModuleDict({f: KeyedEmbedding(dim=dim, keys=keys.get(f, ())) for f in self.fields})

    def forward(self, context: Mapping[str, Sequence[str]]) -> Tensor:
        missing = [f for f in self.fields if f not in context]
        if missing:
            raise KeyError(f"context is missing field(s) {missing}; expected {list(self.fields)}")
        return torch.stack([self.tables[f].embed(context[f]) for f in self.fields], dim=1)  # [B, F, D]


class PromptEmbedding(KeyedEmbedding):
    """MtM's prompt tokens: one learned vector per masking scheme (``Embedding(4, dim)``).

    Args:
        dim: D.
        keys: scheme names; default :data:`MTM_PROMPTS` (neuron, causal, intra-region,
            inter-region).
        init_std: initial row scale.

    Shapes:
        embed([B] scheme names) -> [B, D]
    """

    def __init__(self, *, dim: int, keys: Sequence[str] = MTM_PROMPTS, init_std: float = 0.02) -> None:
        super().__init__(dim=dim, keys=keys, init_std=init_std)


class IDEncoder(nn.Module):
    """SPINT-style identity encoder: calibration activity of each unit -> identity embedding.

    One shared network, applied to every unit independently (no cross-unit interaction, so
    permuting units permutes outputs and nothing else):

    1. ``phi``: MLP over each trial's binned series [T] -> [hidden] (per unit, per trial);
    2. mean over the unit's valid calibration trials;
    3. ``psi``: MLP [hidden] -> [D].

    Counts enter as ``log1p(count)`` so a bursty unit does not dominate. Calibration
    snippets must be resampled or cropped to ``num_bins`` by the caller.

    Args:
        num_bins: T, bins per calibration trial.
        dim: D, identity embedding width.
        hidden_dim: width of both MLPs.

    Shapes:
        forward(counts [B, U, R, T], unit_mask [B, U] | None, trial_mask [B, R] | [B, U, R] |
        None) -> [B, U, D]; masked units give zeros; a unit with no valid trial gives ``psi(0)``.
    """

    def __init__(self, *, num_bins: int, dim: int, hidden_dim: int = 128) -> None:
        super().__init__()
        self.num_bins = num_bins
        self.phi = nn.Sequential(
            nn.Linear(num_bins, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, hidden_dim), nn.GELU()
        )
        self.psi = nn.Sequential(nn.Linear(hidden_dim, hidden_dim), nn.GELU(), nn.Linear(hidden_dim, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He (fan-in, ReLU-gain) normal weights and zero biases in both MLPs.

        PyTorch's default ``nn.Linear`` init shrinks the signal ~3x per layer; through these four
        layers and the trial pooling the identities of different units started ~100x closer to
        each other (across-unit sd 0.0017 per dim) than the activity tokens they are added to
        (0.155), so SPINT barely used them (Lorenz testbed vel R2 0.80-0.93). With variance-
        preserving init the spread is 0.078 and R2 rises (docs/models/spint.md).
        """
        for layer in (*self.phi, *self.psi):
            if isinstance(layer, nn.Linear):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)

    def forward(self, counts: Tensor, unit_mask: Tensor | None = None, trial_mask: Tensor | None = None) -> Tensor:
        if counts.ndim != 4 or counts.shape[-1] != self.num_bins:
            raise ValueError(
                f"counts must be [batch, units, trials, {self.num_bins} bins], got {tuple(counts.shape)}; "
                "resample calibration trials to num_bins first"
            )
        b, u, r, _ = counts.shape
        per_trial = self.phi(torch.log1p(counts.float().clamp_min(0)).to(self.psi[0].weight.dtype))  # [B, U, R, h]
        weights = torch.ones(b, u, r, device=counts.device, dtype=per_trial.dtype)
        if trial_mask is not None:
            weights = weights * (trial_mask[:, None, :] if trial_mask.ndim == 2 else trial_mask).to(per_trial.dtype)
        pooled = (per_trial * weights[..., None]).sum(2) / weights.sum(2, keepdim=True).clamp_min(1.0)  # [B, U, h]
        out = self.psi(pooled)  # [B, U, D]
        if unit_mask is not None:
            out = out * unit_mask[..., None].to(out.dtype)
        return out
