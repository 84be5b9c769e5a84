"""Checks that catch data which reads fine but would give silently wrong results.

A malformed file is a :class:`~spikefm.data.recording.DataError` where it is read. These checks
look at a whole, well-formed recording for what makes training or summaries meaningless:

* :func:`check_spike_span` warns when spike times lie far outside all the others, or outside the
  span of the behaviour and trials (a clock glitch such as one spike at 1e7 s, or one unit on
  another clock, stretches the session and dilutes every rate);
* :func:`check_trainable` refuses recordings without spikes and drops, with a warning, behaviour
  series with no finite sample (a decoder would train on an all-masked target at loss 0).

>>> import numpy as np
>>> from spikefm.data.recording import Recording, SpikeTrains, Units
>>> times = np.append(np.linspace(0.0, 100.0, 500), 1e7)
>>> rec = Recording(spikes=SpikeTrains(times, np.zeros(501, int)), units=Units(ids=["a"]), session="s")
>>> far_outside(rec.spikes.times).tolist()
[10000000.0]
"""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Sequence

import numpy as np

from spikefm.data.recording import DataError, Recording

__all__ = ["DataWarning", "far_outside", "outside_reference", "check_spike_span", "check_trainable"]

_CORE = 0.01  # the central 98% of spikes define the recording's core span ...
_REACH = 10.0  # ... and a spike more than 10 core spans (at least 10 s) beyond it is an outlier


class DataWarning(UserWarning):
    """Data that is readable but probably wrong; the message names the source, field and values."""


def _name(rec: Recording) -> str:
    return rec.source or rec.session


def far_outside(times: np.ndarray) -> np.ndarray:
    """Spike times more than ``_REACH`` core spans outside the central 98% of the (sorted) ``times``."""
    n = times.size
    if n < 2:
        return times[:0]
    lo, hi = times[int(_CORE * (n - 1))], times[int(np.ceil((1 - _CORE) * (n - 1)))]
    reach = _REACH * max(hi - lo, 1.0)
    return times[(times < lo - reach) | (times > hi + reach)]


def _reference_span(rec: Recording) -> tuple[float, float] | None:
    """The span the behaviour samples and trials cover, if the recording has either."""
    edges = [t for series in rec.behavior.values() if series.timestamps.size
             for t in (series.timestamps[0], series.timestamps[-1])]
    if rec.trials is not None and len(rec.trials):
        edges += [float(rec.trials.start.min()), float(rec.trials.end.max())]
    return (min(edges), max(edges)) if edges else None


def outside_reference(rec: Recording) -> np.ndarray:
    """Spike times more than ``_REACH`` spans (at least 10 s) outside the span of the behaviour and trials."""
    span = _reference_span(rec)
    times = rec.spikes.times
    if span is None:
        return times[:0]
    reach = _REACH * max(span[1] - span[0], 1.0)
    return times[(times < span[0] - reach) | (times > span[1] + reach)]


def check_spike_span(rec: Recording, *, where: str | None = None) -> None:
    """Warn (:class:`DataWarning`) when spike times lie far outside the other spikes' span or the behaviour's.

    Args:
        rec: the recording.
        where: names it in the message (default: its source, else its session).
    """
    times = rec.spikes.times
    outliers = np.union1d(far_outside(times), outside_reference(rec))
    if not outliers.size:
        return
    core = (times[int(_CORE * (times.size - 1))], times[int(np.ceil((1 - _CORE) * (times.size - 1)))])
    span = _reference_span(rec)
    behaviour = f" and the behaviour / trials' [{span[0]:.6g}, {span[1]:.6g}] s" if span else ""
    shown = ", ".join(f"{t:.6g}" for t in outliers[:3]) + (", ..." if outliers.size > 3 else "")
    count = int(np.isin(times, outliers).sum())
    warnings.warn(
        f"{where or _name(rec)}: {count} spike time(s) lie far outside the spikes' core span "
        f"[{core[0]:.6g}, {core[1]:.6g}] s{behaviour} ({shown} s); they stretch the recording to "
        f"[{rec.start:.6g}, {rec.end:.6g}) s and dilute every rate. Check the file's clock, or keep the "
        "good part with rec.slice(t0, t1)",
        DataWarning,
        stacklevel=2,
    )


def check_trainable(recordings: Sequence[Recording]) -> list[Recording]:
    """``recordings`` ready for training: raise if one has no spikes, drop all-NaN behaviour with a warning.

    Raises:
        DataError: a recording has no spikes (there is nothing to learn from it).
    """
    checked = []
    for rec in recordings:
        if rec.n_spikes == 0:
            raise DataError(
                f"{_name(rec)}: session '{rec.session}' has no spikes ({rec.n_units} units, "
                f"[{rec.start:g}, {rec.end:g}) s); nothing to train on. Check the file, or leave the session out "
                "with data.sessions"
            )
        empty = [name for name, series in rec.behavior.items() if not np.isfinite(series.values).any()]
        for name in empty:
            warnings.warn(
                f"{_name(rec)}: behaviour '{name}' has no finite value ({rec.behavior[name].values.size} samples, "
                "all NaN or inf); it is left out, so nothing decodes or scores it",
                DataWarning,
                stacklevel=2,
            )
        if empty:
            rec = replace(rec, behavior={k: v for k, v in rec.behavior.items() if k not in empty})
        checked.append(rec)
    return checked
