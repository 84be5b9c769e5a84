"""Event-pair tokens (Neuroformer): each spike is a (neuron-id token, dt token) pair.

The window's last ``current_window`` seconds are the *current* chunk (the tokens a model
predicts); the ``past_window`` seconds before it are the *past* chunk it conditions on.
Spikes earlier than that are dropped, so a sampler should cut windows of
``past_window + current_window`` and step them by ``current_window``.

Sequence layout: ``[past spikes (CONTEXT)] [SOS (START)] [current spikes (SPIKE)] [EOS (END)]``.

Vocabularies (as Neuroformer builds them): neuron ids are the window's unit indices
``0..U-1`` followed by SOS = U, EOS = U + 1, PAD = U + 2; dt tokens are offsets from the
chunk start rounded to the nearest ``resolution`` step, ``0..n_offsets-1`` (``n_offsets =
ceil(max(current, past) / resolution) + 1``), followed by SOS, EOS, PAD
(:attr:`EventConfig.dt_sos` ...). Collate pads with 0; read padding through ``mask``.

>>> import numpy as np
>>> from spikefm.data.recording import Recording, SpikeTrains, Units
>>> rec = Recording(spikes=SpikeTrains(np.array([0.012, 0.071]), np.array([0, 1])),
...                 units=Units(ids=np.array(["a", "b"])), start=0.0, end=1.0)
>>> tokenizer = EventTokenizer(EventConfig(resolution=0.01, current_window=0.05, past_window=0.05))
>>> tokens = tokenizer(rec.window(0.0, 0.1))
>>> tokens.values.tolist(), tokens.extras["dt_token"].tolist()
([0, 2, 1, 3], [1, 6, 2, 7])
>>> times, units = tokenizer.decode(tokens)
>>> np.round(times, 6).tolist(), units.tolist()
([0.07], [1])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikefm.data.recording import DataError, Window
from spikefm.tokenize.base import QueryConfig, TokenType, Tokens, cached_unit_keys, make_queries, unit_extras

__all__ = ["EventConfig", "EventTokenizer"]


@dataclass(frozen=True, kw_only=True)
class EventConfig(QueryConfig):
    """Config of :class:`EventTokenizer`.

    Args:
        resolution: dt step in seconds (Neuroformer: 10 ms).
        current_window: length of the current chunk in seconds (Neuroformer: 50 ms).
        past_window: length of the past chunk in seconds (Neuroformer: 50 ms); 0 disables it.
        max_current_tokens / max_past_tokens: keep only the latest spikes of a chunk beyond
            this many (Neuroformer's block sizes); None keeps all.
        query: defaults to ``"none"``.
    """

    query: str = "none"
    resolution: float = 0.01
    current_window: float = 0.05
    past_window: float = 0.05
    max_current_tokens: int | None = None
    max_past_tokens: int | None = None

    _allowed_queries = ("none", "rate", "behavior")

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("resolution", "current_window"):
            value = getattr(self, name)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"EventConfig.{name} must be > 0 seconds, got {value}")
        if not (np.isfinite(self.past_window) and self.past_window >= 0):
            raise ValueError(f"EventConfig.past_window must be >= 0 seconds, got {self.past_window}")
        if self.resolution > self.current_window:
            raise ValueError(
                f"EventConfig.resolution ({self.resolution}) is coarser than current_window ({self.current_window})"
            )
        for name in ("max_current_tokens", "max_past_tokens"):
            value = getattr(self, name)
            if value is not None and (int(value) != value or value < 0):
                raise ValueError(f"EventConfig.{name} must be a non-negative integer or None, got {value}")

    @property
    def n_offsets(self) -> int:
        """Number of dt offset tokens (0 .. the longer chunk, in ``resolution`` steps)."""
        return int(np.ceil(max(self.current_window, self.past_window) / self.resolution - 1e-9)) + 1

    @property
    def dt_sos(self) -> int:
        return self.n_offsets

    @property
    def dt_eos(self) -> int:
        return self.n_offsets + 1

    @property
    def dt_pad(self) -> int:
        return self.n_offsets + 2

    @property
    def dt_vocab_size(self) -> int:
        return self.n_offsets + 3


class EventTokenizer:
    """Neuroformer (id, dt) event pairs.

    Tokens: ``values`` int64 [L] the neuron-id token, ``extras["dt_token"]`` int64 [L] the dt
    token, ``timestamps`` the exact spike times (SOS at the current chunk start, EOS at the
    window end), ``unit_index`` the unit (-1 for SOS / EOS), ``token_type`` CONTEXT for past
    spikes, SPIKE for current ones, START / END for SOS / EOS.

    What it loses: temporal precision to +-resolution / 2 in the dt tokens (decode error is
    at most half a step), every spike before the past chunk, and spikes beyond the
    ``max_*_tokens`` limits. Cost: like per-spike tokens, length grows with the spike count,
    and past spikes are tokenized again in every window that conditions on them.
    """

    def __init__(self, config: EventConfig | None = None):
        self.config = config or EventConfig()

    @staticmethod
    def id_special_tokens(n_units: int) -> dict[str, int]:
        """The id vocabulary's special tokens for a window with ``n_units`` units."""
        return {"sos": n_units, "eos": n_units + 1, "pad": n_units + 2}

    def chunk_starts(self, duration: float) -> tuple[float, float]:
        """(past chunk start, current chunk start), window-relative; the past start may be < 0."""
        current = duration - self.config.current_window
        return current - self.config.past_window, current

    def __call__(self, window: Window) -> Tokens:
        cfg, recording = self.config, window.recording
        duration = recording.end - recording.start
        if duration < cfg.current_window - 1e-9:
            raise DataError(
                f"{recording.source or recording.session}: window of {duration:.6g} s is shorter than "
                f"EventConfig.current_window={cfg.current_window}"
            )
        past0, current0 = (recording.start + t for t in self.chunk_starts(duration))
        times, units = recording.spikes.times, recording.spikes.units
        lo, mid = np.searchsorted(times, [max(past0, recording.start), current0], side="left")
        past = self._latest(lo, mid, cfg.max_past_tokens)
        current = self._latest(mid, times.shape[0], cfg.max_current_tokens)
        specials = self.id_special_tokens(recording.n_units)
        n_past, n_cur = past.stop - past.start, current.stop - current.start
        token_type = np.concatenate([
            np.full(n_past, TokenType.CONTEXT, np.int64), [TokenType.START],
            np.full(n_cur, TokenType.SPIKE, np.int64), [TokenType.END],
        ])
        queries, targets = make_queries(window, cfg)
        return Tokens(
            values=np.concatenate([units[past], [specials["sos"]], units[current], [specials["eos"]]]),
            timestamps=np.concatenate([times[past], [current0], times[current], [recording.end]]),
            unit_index=np.concatenate([units[past], [-1], units[current], [-1]]),
            token_type=token_type,
            mask=np.ones(token_type.shape[0], bool),
            unit_keys=cached_unit_keys(recording),
            session=window.session,
            duration=window.duration,
            query_timestamps=queries,
            targets=targets,
            extras={"dt_token": np.concatenate([
                self._offsets(times[past], past0), [cfg.dt_sos], self._offsets(times[current], current0), [cfg.dt_eos],
            ]).astype(np.int64)},
            unit_extras=unit_extras(window),
        )

    @staticmethod
    def _latest(lo: int, hi: int, limit: int | None) -> slice:
        return slice(lo if limit is None else max(lo, hi - limit), hi)

    def _offsets(self, times: np.ndarray, chunk_start: float) -> np.ndarray:
        steps = np.floor((times - chunk_start) / self.config.resolution + 0.5).astype(np.int64)
        return np.clip(steps, 0, self.config.n_offsets - 1)

    def decode(self, tokens: Tokens, *, include_past: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Spike times (window-relative, from the dt tokens) and unit indices of the current
        chunk (and the past chunk first, if ``include_past``)."""
        kinds = [TokenType.SPIKE, TokenType.CONTEXT] if include_past else [TokenType.SPIKE]
        keep = np.isin(tokens.token_type, kinds) & tokens.mask
        past0, current0 = self.chunk_starts(tokens.duration)
        base = np.where(tokens.token_type[keep] == TokenType.CONTEXT, past0, current0)
        times = base + tokens.extras["dt_token"][keep] * self.config.resolution
        return times, tokens.values[keep].astype(np.int64)
