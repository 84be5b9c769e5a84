"""What each tokenizer makes of one recording: the table behind ``spikefm inspect FILE --tokens``.

Per tokenizer, over ``n_windows`` random windows (seeded):

* ``tokens_per_s``: tokens per second of recording. Windows tile the recording, so this is the
  mean tokens per window divided by the window step: ``window_length``, except for event
  pairs, whose windows step by ``current_window`` (past spikes are tokenized again).
* ``zero_fraction``: the share of stored entries that carry no spike. Dense tokenizers (binned,
  patch, neuron): zero counts among the real entries (patch padding excluded). Sparse ones
  (per-spike, event pairs): tokens that are not spikes (START / END, SOS / EOS).
* ``entries_per_token``: numbers stored in ``values`` per token (0 for per-spike tokens).
* ``len_p5``, ``len_p50``, ``len_p95``, ``len_max``: sequence-length quantiles per window.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from spikefm.data.recording import DataError, Recording
from spikefm.tokenize.base import Tokenizer, Tokens, TokenType
from spikefm.tokenize.binned import BinnedConfig, BinnedTokenizer, PatchConfig, PatchTokenizer
from spikefm.tokenize.events import EventConfig, EventTokenizer
from spikefm.tokenize.neurons import NeuronConfig, NeuronTokenizer
from spikefm.tokenize.spikes import SpikeConfig, SpikeTokenizer

__all__ = ["default_tokenizers", "tokenizer_table", "TOKEN_COLUMNS"]


def _lengths(row: dict) -> str:
    return "/".join(f"{row[k]:.0f}" for k in ("len_p5", "len_p50", "len_p95", "len_max"))


# How ``spikefm inspect --tokens`` shows a row: (header, cell text, one-line explanation).
TOKEN_COLUMNS = (
    ("tokenizer", lambda row: row["tokenizer"], "the tokenizer family (the model it comes from)"),
    ("tokens/s", lambda row: f"{row['tokens_per_s']:,.0f}",
     "tokens per second of recording (event pairs: per step of their short current window)"),
    ("zeros", lambda row: f"{row['zero_fraction']:.0%}",
     "entries without a spike: zero counts (dense) or marker tokens (per-spike, event)"),
    ("values/token", lambda row: str(row["entries_per_token"]),
     "numbers each token stores (0: a per-spike token is just a unit id and a time)"),
    ("length p5/p50/p95/max", _lengths, "tokens per window: percentiles and maximum over 64 random windows"),
)


def default_tokenizers() -> dict[str, Tokenizer]:
    """One tokenizer per family with its published defaults (no queries)."""
    return {
        "binned (NDT1)": BinnedTokenizer(BinnedConfig(query="none")),
        "patch (NDT2)": PatchTokenizer(PatchConfig(query="none")),
        "spike (POYO)": SpikeTokenizer(SpikeConfig(query="none")),
        "neuron (STNDT)": NeuronTokenizer(NeuronConfig(query="none")),
        "event (Neuroformer)": EventTokenizer(EventConfig(query="none")),
    }


def tokenizer_table(
    recording: Recording,
    window_length: float = 1.0,
    n_windows: int = 64,
    seed: int = 0,
    tokenizers: Mapping[str, Tokenizer] | None = None,
) -> list[dict]:
    """One row (a dict, see the module docstring) per tokenizer, over random windows.

    Args:
        recording: the recording to inspect; it must be at least ``window_length`` long.
        window_length: window length in seconds.
        n_windows: how many windows to draw (uniform starts, seeded).
        seed: random seed of the window starts.
        tokenizers: name -> tokenizer; defaults to :func:`default_tokenizers`.
    """
    starts = _window_starts(recording, window_length, n_windows, seed)
    windows = [recording.window(t, t + window_length) for t in starts]
    rows = []
    for name, tokenizer in (tokenizers or default_tokenizers()).items():
        samples = [tokenizer(w) for w in windows]
        lengths = np.array([len(s) for s in samples], np.int64)
        step = tokenizer.config.current_window if isinstance(tokenizer, EventTokenizer) else window_length
        p5, p50, p95 = np.percentile(lengths, [5, 50, 95])
        rows.append({
            "tokenizer": name,
            "tokens_per_s": float(lengths.mean() / step),
            "zero_fraction": _zero_fraction(samples),
            "entries_per_token": int(np.prod(samples[0].values.shape[1:], dtype=np.int64)),
            "len_p5": float(p5),
            "len_p50": float(p50),
            "len_p95": float(p95),
            "len_max": int(lengths.max()),
        })
    return rows


def _window_starts(recording: Recording, window_length: float, n_windows: int, seed: int) -> np.ndarray:
    if not (np.isfinite(window_length) and window_length > 0):
        raise ValueError(f"window_length must be > 0 seconds, got {window_length}")
    if int(n_windows) != n_windows or n_windows < 1:
        raise ValueError(f"n_windows must be a positive integer, got {n_windows}")
    room = recording.duration - window_length
    if room < 0:
        raise DataError(
            f"{recording.source or recording.session}: recording of {recording.duration:.3g} s is shorter than "
            f"window_length={window_length} s; pass a shorter window_length"
        )
    rng = np.random.default_rng(seed)
    return np.sort(recording.start + rng.uniform(0.0, room, size=int(n_windows)))


def _zero_fraction(samples: list[Tokens]) -> float:
    zeros = total = 0
    for tokens in samples:
        z, n = _zeros_and_entries(tokens)
        zeros, total = zeros + z, total + n
    return float(zeros / total) if total else 0.0


def _zeros_and_entries(tokens: Tokens) -> tuple[int, int]:
    if "channel_mask" in tokens.extras:
        real = tokens.values[tokens.extras["channel_mask"]]
        return int(np.count_nonzero(real == 0)), int(real.size)
    if tokens.values.ndim == 2 and tokens.values.shape[1] > 0:
        return int(np.count_nonzero(tokens.values == 0)), int(tokens.values.size)
    carries_spike = np.isin(tokens.token_type, [TokenType.SPIKE, TokenType.CONTEXT])
    return int(np.count_nonzero(~carries_spike)), len(tokens)
