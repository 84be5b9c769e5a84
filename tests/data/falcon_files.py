"""Small FALCON-layout NWB files written with pynwb, shaped like the DANDI files falcon_challenge reads."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from pynwb import NWBHDF5IO, NWBFile, TimeSeries
from pynwb.behavior import BehavioralTimeSeries

BIN = 0.02


def write_falcon_file(path: Path, task: str, *, n_bins: int = 600, n_units: int = 12, n_trials: int = 6,
                      seed: int = 0, spikes: list[np.ndarray] | None = None, target: np.ndarray | None = None,
                      session: str = "20120924", t0: float = 0.0) -> Path:
    """One FALCON file of ``task`` ("m1", "m2", "h1"): units, target, eval_mask and trials.

    Spikes and target default to random ones; pass ``spikes`` (per-unit times, s) and ``target``
    ([n_bins, D]) to write chosen data. Bins are 20 ms from ``t0``.
    """
    rng = np.random.default_rng(seed)
    nwb = NWBFile(session_description="falcon test", identifier=f"{task}-{seed}",
                  session_start_time=datetime(2012, 9, 24, tzinfo=timezone.utc), session_id=session)
    duration = n_bins * BIN
    if spikes is None:
        spikes = [np.sort(rng.uniform(t0, t0 + duration, rng.integers(20, 200))) for _ in range(n_units)]
        spikes[0] = np.concatenate([spikes[0], t0 + np.array([BIN * 10, BIN * 11])])  # spikes exactly on bin edges
        spikes[0].sort()
    for times in spikes:
        nwb.add_unit(spike_times=times)
    starts = t0 + np.arange(n_bins) * BIN
    dims = {"m1": 4, "m2": 2, "h1": 7}[task]
    target = rng.normal(size=(n_bins, dims)) if target is None else target
    mask = np.ones(n_bins, bool)
    mask[rng.choice(n_bins, n_bins // 5, replace=False)] = False
    if task in ("m1", "m2"):
        stamps = starts + BIN if task == "m1" else starts  # M1 stamps bin ends, M2 bin starts
        container = BehavioralTimeSeries(name="preprocessed_emg" if task == "m1" else "finger_vel")
        for d in range(dims):
            container.add_timeseries(TimeSeries(name=f"dim{d}", data=target[:, d], timestamps=stamps, unit="a.u."))
        nwb.add_acquisition(container)
        nwb.add_acquisition(TimeSeries(name="eval_mask", data=mask, timestamps=stamps, unit="bool"))
        bounds = t0 + np.linspace(0, duration, n_trials + 1)
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            nwb.add_trial(start_time=lo, stop_time=hi)
    else:
        ends = starts + BIN
        # H1 keeps its 20 ms period under `rate` and the first bin end under the data's `offset`.
        nwb.add_acquisition(TimeSeries(name="OpenLoopKinematics", data=np.cumsum(target, 0), unit="a.u.",
                                       starting_time=0.0, rate=BIN, offset=float(ends[0])))
        nwb.add_acquisition(TimeSeries(name="OpenLoopKinematicsVelocity", data=target, unit="a.u.",
                                       starting_time=0.0, rate=BIN))
        nwb.add_acquisition(TimeSeries(name="eval_mask", data=mask, starting_time=0.0, rate=BIN, unit="bool"))
        trial_num = np.repeat(np.arange(n_trials), int(np.ceil(n_bins / n_trials)))[:n_bins]
        nwb.add_acquisition(TimeSeries(name="TrialNum", data=trial_num, starting_time=0.0, rate=BIN, unit="n"))
    with NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return path
