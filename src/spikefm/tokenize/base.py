"""Tokens (one sample), Batch (many samples) and the collate between them.

A tokenizer turns a :class:`~spikefm.data.recording.Window` into :class:`Tokens`: numpy
arrays on CPU, one row per token. :func:`collate` stacks a list of them into a
:class:`Batch` of torch tensors, either padded (``[B, Lmax, ...]`` + ``mask``) or packed
(``[sum L, ...]`` + ``cu_seqlens``) for variable-length attention kernels.

Shape legend: ``L`` tokens of one sample, ``U`` units of one sample, ``Q`` output queries,
``D`` behaviour dimensions, ``B`` samples in a batch.

Queries and targets (shared by every tokenizer through :class:`QueryConfig`):

* ``query="none"``: no queries, no targets.
* ``query="rate"``: queries every ``1 / query_rate_hz`` s from the window start (``k / rate``
  for all ``k`` with ``k / rate < duration``).
* ``query="behavior"``: queries at the window's samples of the first behaviour key.
* ``query="bins"`` (binned tokenizers only): one query at the centre of each bin.

Targets are the window's behaviour at the query times by *linear interpolation* between the
window's own samples, clamped to the first / last sample outside them (so queries between
the window start and the first sample take the first sample's value). Where the window holds
no sample of a key, its targets are NaN. At the samples themselves (``query="behavior"``)
targets are the samples exactly.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields, replace
from enum import IntEnum

import numpy as np
import torch

from spikefm.data.recording import DataError, Recording, Window, trusted

__all__ = [
    "TokenType",
    "N_TOKEN_TYPES",
    "Tokens",
    "Batch",
    "collate",
    "QueryConfig",
    "Tokenizer",
    "make_queries",
    "unit_extras",
    "cached_unit_keys",
]


class TokenType(IntEnum):
    """Token-type ids stored in ``Tokens.token_type``.

    ``SPIKE`` is every data token: a spike, a bin's count vector, a patch, a neuron's series.
    ``START`` / ``END`` mark a unit's window edges (POYO) or a chunk's SOS / EOS (Neuroformer).
    ``CONTEXT`` is a spike from the previous window that Neuroformer conditions on.
    """

    SPIKE = 0
    START = 1
    END = 2
    CONTEXT = 3


N_TOKEN_TYPES = len(TokenType)

Tokenizer = Callable[[Window], "Tokens"]
"""A tokenizer is any deterministic callable ``Window -> Tokens``."""


# ---------------------------------------------------------------------------- Tokens
@dataclass(frozen=True)
class Tokens:
    """One tokenized window (numpy, CPU). Arrays are validated and never copied needlessly.

    Per token (leading dimension ``L``):
        values: [L, ...] the token content; its meaning depends on the tokenizer (count vector,
            patch counts, neuron series, id token; per-spike tokens carry an empty ``[L, 0]``).
        timestamps: float64 [L] seconds relative to the window start (spike times exact).
        unit_index: int64 [L] index into ``unit_keys``, or -1 where a token has no single unit.
        token_type: int64 [L] a :class:`TokenType`.
        mask: bool [L] token validity.
        extras: name -> [L, ...] family-specific per-token fields (patch positions, count
            classes, dt tokens); padded / packed exactly like ``values``.

    Per unit (leading dimension ``U = len(unit_keys)``):
        unit_keys: ``"session/unit"`` keys of the window's units.
        unit_extras: name -> [U, ...] per-unit fields (tokenizers give ``heldout`` bool and
            ``region`` str, ``""`` when unknown).

    Per sample:
        session: session id. duration: window length in seconds.
        query_timestamps: float64 [Q] output query times (window-relative), or None.
        targets: name -> float32 [Q, D] behaviour at the queries (NaN where unavailable).
    """

    values: np.ndarray
    timestamps: np.ndarray
    unit_index: np.ndarray
    token_type: np.ndarray
    mask: np.ndarray
    unit_keys: tuple[str, ...]
    session: str
    duration: float
    query_timestamps: np.ndarray | None = None
    targets: dict[str, np.ndarray] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    unit_extras: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        timestamps = np.asarray(self.timestamps, np.float64)
        if timestamps.ndim != 1:
            raise ValueError(f"Tokens.timestamps must be 1-D [L], got shape {timestamps.shape}")
        n = timestamps.shape[0]
        object.__setattr__(self, "timestamps", timestamps)
        object.__setattr__(self, "values", _check_rows(self.values, n, "values"))
        object.__setattr__(self, "unit_index", _check_rows(self.unit_index, n, "unit_index", np.int64, 1))
        object.__setattr__(self, "token_type", _check_rows(self.token_type, n, "token_type", np.int64, 1))
        object.__setattr__(self, "mask", _check_rows(self.mask, n, "mask", np.bool_, 1))
        object.__setattr__(self, "unit_keys", tuple(self.unit_keys))
        object.__setattr__(self, "duration", float(self.duration))
        self._check_unit_index()
        extras = {k: _check_rows(v, n, f"extras['{k}']") for k, v in self.extras.items()}
        object.__setattr__(self, "extras", extras)
        n_units = len(self.unit_keys)
        per_unit = {k: _check_rows(v, n_units, f"unit_extras['{k}']") for k, v in self.unit_extras.items()}
        object.__setattr__(self, "unit_extras", per_unit)
        self._check_queries()

    def _check_unit_index(self) -> None:
        if self.unit_index.size == 0:
            return
        lo, hi = int(self.unit_index.min()), int(self.unit_index.max())
        if lo < -1 or hi >= len(self.unit_keys):
            raise ValueError(
                f"Tokens.unit_index spans [{lo}, {hi}] but must lie in [-1, {len(self.unit_keys)}) "
                f"(an index into unit_keys, or -1 for tokens without a single unit)"
            )

    def _check_queries(self) -> None:
        if self.query_timestamps is None:
            if self.targets:
                raise ValueError("Tokens.targets given without query_timestamps")
            return
        queries = np.asarray(self.query_timestamps, np.float64)
        if queries.ndim != 1:
            raise ValueError(f"Tokens.query_timestamps must be 1-D [Q], got shape {queries.shape}")
        object.__setattr__(self, "query_timestamps", queries)
        targets = {}
        for key, value in self.targets.items():
            value = _check_rows(value, queries.shape[0], f"targets['{key}']", np.float32)
            if value.ndim != 2:
                raise ValueError(f"Tokens.targets['{key}'] must be [Q, D], got shape {value.shape}")
            targets[key] = value
        object.__setattr__(self, "targets", targets)

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def n_units(self) -> int:
        return len(self.unit_keys)

    @classmethod
    def from_checked(cls, **fields: object) -> "Tokens":
        """Tokens a tokenizer built from a validated window, already in the form the checks give.

        Skips ``__post_init__``: every field must be given with the dtype, rank and row count the
        class documents (``timestamps`` float64, ``unit_index`` / ``token_type`` int64 in range,
        ``mask`` bool, tuples, floats, float32 [Q, D] targets). The per-window checks cost as much
        as tokenizing a window of ~2,000 spikes; tokenizers whose output is correct by
        construction use this, anything else the normal constructor.
        """
        return trusted(cls, **fields)


def _check_rows(
    array: np.ndarray, n_rows: int, name: str, dtype: type | None = None, ndim: int | None = None
) -> np.ndarray:
    array = np.asarray(array) if dtype is None else np.asarray(array).astype(dtype, copy=False)
    if array.ndim == 0 or array.shape[0] != n_rows:
        raise ValueError(f"Tokens.{name} has shape {array.shape}, expected {n_rows} rows")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"Tokens.{name} must be {ndim}-D, got shape {array.shape}")
    return array


# ---------------------------------------------------------------------------- queries
QUERY_MODES = ("none", "rate", "behavior", "bins")


@dataclass(frozen=True, kw_only=True)
class QueryConfig:
    """Output queries and behaviour targets, shared by every tokenizer config.

    Args:
        query: ``"none"``, ``"rate"``, ``"behavior"`` or (binned tokenizers) ``"bins"``;
            see the module docstring.
        query_rate_hz: query rate for ``query="rate"``.
        behavior_keys: behaviour series to turn into targets; None takes every series the
            recording has (sorted by name). A named key the recording lacks is an error.
    """

    query: str = "rate"
    query_rate_hz: float = 100.0
    behavior_keys: tuple[str, ...] | None = None

    # Query modes a tokenizer supports; subclasses without bins drop "bins".
    _allowed_queries = QUERY_MODES

    def __post_init__(self) -> None:
        if self.query not in self._allowed_queries:
            raise ValueError(
                f"{type(self).__name__}.query must be one of {self._allowed_queries}, got {self.query!r}"
            )
        if not (np.isfinite(self.query_rate_hz) and self.query_rate_hz > 0):
            raise ValueError(f"{type(self).__name__}.query_rate_hz must be > 0, got {self.query_rate_hz}")
        if self.behavior_keys is not None:
            if isinstance(self.behavior_keys, str):
                raise ValueError(
                    f"{type(self).__name__}.behavior_keys must be a tuple of names, got the string "
                    f"{self.behavior_keys!r}; write ({self.behavior_keys!r},)"
                )
            object.__setattr__(self, "behavior_keys", tuple(self.behavior_keys))


def make_queries(
    window: Window, config: QueryConfig, bin_centers: np.ndarray | None = None
) -> tuple[np.ndarray | None, dict[str, np.ndarray]]:
    """Query times (float64 [Q], window-relative) and behaviour targets (float32 [Q, D])."""
    if config.query == "none":
        return None, {}
    recording = window.recording
    keys = sorted(recording.behavior) if config.behavior_keys is None else config.behavior_keys
    missing = [k for k in keys if k not in recording.behavior]
    if missing:
        raise DataError(
            f"{recording.source or recording.session}: no behaviour {missing} (available: "
            f"{sorted(recording.behavior)}); set behavior_keys=() to tokenize without targets"
        )
    queries = _query_times(window, config, keys, bin_centers)
    own = keys[0] if config.query == "behavior" else None  # queries are this key's own samples
    targets = {
        # At its own samples a series' targets are the samples exactly (what np.interp returns
        # at its knots): copy them instead of interpolating.
        key: _own_samples(recording.behavior[key]) if key == own else _interpolate(recording.behavior[key], queries)
        for key in keys
    }
    return queries, targets


def _own_samples(series) -> np.ndarray:
    return np.asarray(series.values).astype(np.float32)  # a copy, as _interpolate returns


def _query_times(
    window: Window, config: QueryConfig, keys: Sequence[str], bin_centers: np.ndarray | None
) -> np.ndarray:
    recording = window.recording
    if config.query == "rate":
        span = recording.end - recording.start
        n = max(0, int(np.ceil(span * config.query_rate_hz - 1e-9)))
        return recording.start + np.arange(n) / config.query_rate_hz
    if config.query == "bins":
        if bin_centers is None:
            raise ValueError("query='bins' needs a binned tokenizer")
        return np.asarray(bin_centers, np.float64)
    if not keys:
        raise DataError(
            f"{recording.source or recording.session}: query='behavior' needs a behaviour series, "
            "but behavior_keys is empty or the recording has none"
        )
    return recording.behavior[keys[0]].timestamps.copy()


def _interpolate(series, queries: np.ndarray) -> np.ndarray:
    values = np.asarray(series.values, np.float64)
    out = np.empty((queries.shape[0], values.shape[1]), np.float32)
    if series.timestamps.size == 0:
        out.fill(np.nan)
        return out
    for column in range(values.shape[1]):
        out[:, column] = np.interp(queries, series.timestamps, values[:, column])
    return out


_KEY_CACHE: dict[int, tuple[weakref.ref, str, tuple[str, ...]]] = {}


def cached_unit_keys(recording: Recording) -> tuple[str, ...]:
    """``tuple(recording.unit_keys())``, cached per units table and session.

    Building the key strings costs more than tokenizing a window of 200 units, and every
    window sliced from one recording shares its units table, so the keys are built once. The
    cache holds a weak reference to the table (a recycled ``id`` cannot alias) and is bounded.
    """
    units = recording.units
    entry = _KEY_CACHE.get(id(units))
    if entry is not None and entry[0]() is units and entry[1] == recording.session:
        return entry[2]
    keys = tuple(recording.unit_keys())
    if len(_KEY_CACHE) >= 1024:
        _KEY_CACHE.clear()
    _KEY_CACHE[id(units)] = (weakref.ref(units), recording.session, keys)
    return keys


def unit_extras(window: Window) -> dict[str, np.ndarray]:
    """Per-unit fields every tokenizer carries, so samples of any session collate together:
    ``heldout`` bool [U] and ``region`` str [U] (``""`` where the recording has no regions)."""
    units = window.recording.units
    region = units.region if units.region is not None else np.full(len(units), "", dtype="<U1")
    return {"heldout": units.heldout, "region": region}


# ---------------------------------------------------------------------------- Batch
@dataclass
class Batch:
    """Collated tokens as torch tensors. ``P`` below is ``[B, Lmax]`` padded or ``[sum L]`` packed.

    Attributes:
        values: [*P, ...] token values (trailing dims zero-padded to the batch max).
        timestamps: float32 [*P] window-relative seconds.
        unit_index: int64 [*P] index into the batch-level ``unit_keys`` (or -1).
        token_type: int64 [*P]. mask: bool [*P] validity (False on padding).
        lengths: int64 [B] tokens per sample.
        unit_keys: the samples' unit keys concatenated; sample ``b`` owns rows
            ``unit_offsets[b]:unit_offsets[b + 1]``.
        unit_offsets: int64 [B + 1].
        sessions: session id per sample. duration: float32 [B].
        cu_seqlens: int32 [B + 1] sample boundaries when packed, else None.
        sample_index: int64 [sum L] sample of each token when packed, else None.
        max_seqlen: the longest sample's length.
        query_timestamps: float32 [B, Qmax] (zero-padded) or None; query_mask: bool [B, Qmax].
        targets: name -> float32 [B, Qmax, D]; padded rows are 0 (read them through query_mask).
        extras: name -> [*P, ...] per-token extras, padded / packed like ``values``.
        unit_extras: name -> [sum U, ...] aligned with ``unit_keys`` (string arrays stay numpy).
    """

    values: torch.Tensor
    timestamps: torch.Tensor
    unit_index: torch.Tensor
    token_type: torch.Tensor
    mask: torch.Tensor
    lengths: torch.Tensor
    unit_keys: tuple[str, ...]
    unit_offsets: torch.Tensor
    sessions: tuple[str, ...]
    duration: torch.Tensor
    cu_seqlens: torch.Tensor | None = None
    sample_index: torch.Tensor | None = None
    max_seqlen: int = 0
    query_timestamps: torch.Tensor | None = None
    query_mask: torch.Tensor | None = None
    targets: dict[str, torch.Tensor] = field(default_factory=dict)
    extras: dict[str, torch.Tensor] = field(default_factory=dict)
    unit_extras: dict[str, torch.Tensor | np.ndarray] = field(default_factory=dict)

    @property
    def packed(self) -> bool:
        return self.cu_seqlens is not None

    @property
    def batch_size(self) -> int:
        return int(self.lengths.shape[0])

    def __len__(self) -> int:
        return self.batch_size

    def to(self, device: torch.device | str, *, non_blocking: bool = False) -> "Batch":
        """A copy with every tensor on ``device`` (numpy string arrays stay on the host)."""

        def move(value):
            if isinstance(value, torch.Tensor):
                return value.to(device, non_blocking=non_blocking)
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            return value

        return replace(self, **{f.name: move(getattr(self, f.name)) for f in fields(self)})


# ---------------------------------------------------------------------------- collate
def collate(samples: Sequence[Tokens], *, pack: bool = False) -> Batch:
    """Stack tokenized samples into a :class:`Batch`, padded (default) or packed.

    ``unit_index`` is shifted so it indexes the concatenated ``unit_keys`` of the batch, so a
    model maps keys to embedding rows once per batch. Queries and targets are always padded
    (with ``query_mask``). Only loops over samples; token data moves in vectorised copies.
    """
    if len(samples) == 0:
        raise ValueError("collate needs at least one sample")
    lengths = np.fromiter((len(s) for s in samples), np.int64, len(samples))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    n_units = np.fromiter((s.n_units for s in samples), np.int64, len(samples))
    unit_offsets = np.concatenate([[0], np.cumsum(n_units)])
    layout = _Packer(offsets) if pack else _Padder(lengths)
    extras = {key: layout(_extra_column(samples, key)) for key in _same_keys(samples, "extras")}
    return Batch(
        values=layout([s.values for s in samples]),
        timestamps=layout([s.timestamps for s in samples], dtype=np.float32),
        unit_index=layout.shifted([s.unit_index for s in samples], unit_offsets[:-1]),
        token_type=layout([s.token_type for s in samples]),
        mask=layout([s.mask for s in samples]),
        lengths=torch.from_numpy(lengths),
        unit_keys=tuple(itertools.chain.from_iterable(s.unit_keys for s in samples)),
        unit_offsets=torch.from_numpy(unit_offsets),
        sessions=tuple(s.session for s in samples),
        duration=torch.tensor([s.duration for s in samples], dtype=torch.float32),
        cu_seqlens=torch.from_numpy(offsets.astype(np.int32)) if pack else None,
        sample_index=torch.from_numpy(np.repeat(np.arange(len(samples)), lengths)) if pack else None,
        max_seqlen=int(lengths.max()),
        extras=extras,
        unit_extras=_collate_unit_extras(samples),
        **_collate_queries(samples),
    )


def _same_keys(samples: Sequence[Tokens], attribute: str) -> list[str]:
    first = getattr(samples[0], attribute)
    keys = list(first)
    for i, sample in enumerate(samples[1:], start=1):
        if getattr(sample, attribute).keys() != first.keys():  # dict views compare as sets
            raise ValueError(
                f"collate: sample {i} has {attribute} {sorted(getattr(sample, attribute))} but sample 0 has "
                f"{sorted(keys)}; batch samples from one tokenizer configuration"
            )
    return keys


def _extra_column(samples: Sequence[Tokens], key: str) -> list[np.ndarray]:
    return [s.extras[key] for s in samples]


def _trailing_shape(arrays: Sequence[np.ndarray], name: str = "values") -> tuple[int, ...]:
    ndims = {a.ndim for a in arrays}
    if len(ndims) != 1:
        raise ValueError(f"collate: samples' {name} differ in rank {sorted(ndims)}")
    return tuple(int(max(sizes)) for sizes in zip(*(a.shape[1:] for a in arrays))) if arrays[0].ndim > 1 else ()


class _Padder:
    """Writes per-sample arrays into a zero-filled ``[B, Lmax, ...]`` tensor.

    One contiguous block copy per sample. The loop is over samples, not tokens, and it is the
    fast way: at POYO's sizes (16 x ~2,000 tokens) it measured ~20 us per field, a boolean-mask
    scatter of the concatenated samples ~220 us and a flat-index scatter ~330 us.
    """

    def __init__(self, lengths: np.ndarray):
        self.lengths = lengths
        self.max_len = int(lengths.max())

    def _empty(self, arrays: Sequence[np.ndarray], dtype, fill) -> np.ndarray:
        dtype = np.result_type(*arrays) if dtype is None else dtype
        shape = (len(arrays), self.max_len, *_trailing_shape(arrays))
        return np.zeros(shape, dtype) if fill == 0 else np.full(shape, fill, dtype)

    def __call__(self, arrays: Sequence[np.ndarray], *, dtype=None, fill=0) -> torch.Tensor:
        out = self._empty(arrays, dtype, fill)
        if out.size:
            for i, array in enumerate(arrays):
                out[(i, slice(0, array.shape[0]), *(slice(0, s) for s in array.shape[1:]))] = array
        return torch.from_numpy(out)

    def shifted(self, unit_index: Sequence[np.ndarray], shifts: np.ndarray) -> torch.Tensor:
        """Per-sample unit indices plus each sample's shift (``-1`` stays ``-1``), padded with -1."""
        out = self._empty(unit_index, np.int64, -1)
        for i, array in enumerate(unit_index):
            _shift_into(out[i, : array.shape[0]], array, shifts[i])
        return torch.from_numpy(out)


class _Packer:
    """Concatenates per-sample arrays into one ``[sum L, ...]`` tensor."""

    def __init__(self, offsets: np.ndarray):
        self.offsets = offsets

    def __call__(self, arrays: Sequence[np.ndarray], *, dtype=None, fill=0) -> torch.Tensor:
        trailing = _trailing_shape(arrays)
        if all(a.shape[1:] == trailing for a in arrays):
            return torch.from_numpy(np.concatenate(arrays, dtype=dtype, casting="same_kind"))
        dtype = np.result_type(*arrays) if dtype is None else dtype
        out = np.full((int(self.offsets[-1]), *trailing), fill, dtype=dtype)
        for i, array in enumerate(arrays):
            rows = slice(int(self.offsets[i]), int(self.offsets[i + 1]))
            out[(rows, *(slice(0, s) for s in array.shape[1:]))] = array
        return torch.from_numpy(out)

    def shifted(self, unit_index: Sequence[np.ndarray], shifts: np.ndarray) -> torch.Tensor:
        """Per-sample unit indices plus each sample's shift (``-1`` stays ``-1``), concatenated."""
        out = np.empty(int(self.offsets[-1]), np.int64)
        for i, array in enumerate(unit_index):
            _shift_into(out[self.offsets[i] : self.offsets[i + 1]], array, shifts[i])
        return torch.from_numpy(out)


def _shift_into(out: np.ndarray, unit_index: np.ndarray, shift: int) -> None:
    """``out[:] = unit_index + shift`` where ``unit_index >= 0``, else -1 (one pass if none is -1)."""
    np.add(unit_index, shift, out=out)
    if unit_index.size and unit_index.min() < 0:
        out[unit_index < 0] = -1


def _collate_unit_extras(samples: Sequence[Tokens]) -> dict[str, torch.Tensor | np.ndarray]:
    out: dict[str, torch.Tensor | np.ndarray] = {}
    for key in _same_keys(samples, "unit_extras"):
        joined = np.concatenate([s.unit_extras[key] for s in samples])
        out[key] = torch.from_numpy(joined) if joined.dtype.kind in "biuf" else joined
    return out


def _collate_queries(samples: Sequence[Tokens]) -> dict:
    has_queries = [s.query_timestamps is not None for s in samples]
    if not any(has_queries):
        return {}
    if not all(has_queries):
        raise ValueError("collate: some samples have query_timestamps and some do not")
    keys = _same_keys(samples, "targets")
    counts = np.fromiter((s.query_timestamps.shape[0] for s in samples), np.int64, len(samples))
    padder = _Padder(counts)
    for key in keys:
        dims = {s.targets[key].shape[1] for s in samples}
        if len(dims) != 1:
            raise ValueError(f"collate: target '{key}' has different widths across samples: {sorted(dims)}")
    return {
        "query_timestamps": padder([s.query_timestamps for s in samples], dtype=np.float32),
        "query_mask": torch.from_numpy(np.arange(padder.max_len) < counts[:, None]),
        "targets": {k: padder([s.targets[k] for s in samples], dtype=np.float32) for k in keys},
    }
