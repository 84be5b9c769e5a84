"""Window samplers: reproducible, inside their domains, trial-aligned, and sharded for DDP."""

from __future__ import annotations

import math
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spikefm.data.recording import Intervals, Recording, SpikeTrains, Units
from spikefm.data.sampling import (
    RandomWindowSampler,
    SequentialWindowSampler,
    TrialWindowSampler,
    WindowSpec,
    split_trials,
    trial_split_intervals,
)
from spikefm.data.synthetic import SyntheticConfig, generate, make_recording


def _recording(start: float, end: float, session: str = "s", trials: Intervals | None = None) -> Recording:
    times = np.linspace(start, end, 50, endpoint=False)
    return Recording(
        spikes=SpikeTrains(times, np.arange(50) % 2),
        units=Units(np.array(["a", "b"])),
        session=session,
        trials=trials,
        start=start,
        end=end,
    )


@pytest.fixture(scope="module")
def synthetic() -> list[Recording]:
    return generate(SyntheticConfig(n_sessions=2, n_trials=20, units_per_session=(6, 8), seed=5)).recordings


# ---------------------------------------------------------------------- random
def test_random_windows_reproducible_and_new_each_epoch() -> None:
    recordings = [_recording(0.0, 30.0, "a"), _recording(5.0, 12.0, "b")]
    first = list(RandomWindowSampler(recordings, 2.0, n_windows_per_epoch=40, seed=7))
    again = list(RandomWindowSampler(recordings, 2.0, n_windows_per_epoch=40, seed=7))
    assert first == again
    sampler = RandomWindowSampler(recordings, 2.0, n_windows_per_epoch=40, seed=7)
    sampler.set_epoch(1)
    assert list(sampler) != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert list(RandomWindowSampler(recordings, 2.0, n_windows_per_epoch=40, seed=8)) != first


@settings(max_examples=40, deadline=None)
@given(
    durations=st.lists(st.floats(0.5, 20.0), min_size=1, max_size=4),
    window=st.floats(0.1, 5.0),
    seed=st.integers(0, 1000),
)
def test_random_windows_lie_inside_their_recording(durations: list[float], window: float, seed: int) -> None:
    recordings = [_recording(10.0 * i, 10.0 * i + d, f"r{i}") for i, d in enumerate(durations)]
    if max(durations) < window:
        with pytest.raises(ValueError, match="longer than every"):
            RandomWindowSampler(recordings, window, seed=seed)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        sampler = RandomWindowSampler(recordings, window, seed=seed)
    assert (len(caught) > 0) == (min(durations) < window)  # warns exactly when it skips a recording
    fitting = sum(d for d in durations if d >= window)
    assert len(sampler) == math.ceil(fitting / window - 1e-9)
    for spec in sampler:
        recording = recordings[spec.recording_index]
        assert spec.t1 - spec.t0 == pytest.approx(window)
        assert recording.start - 1e-9 <= spec.t0 and spec.t1 <= recording.end + 1e-9
        assert recording.duration >= window - 1e-9  # too-short recordings are never sampled


def test_random_windows_cover_time_evenly() -> None:
    recordings = [_recording(0.0, 10.0, "long"), _recording(0.0, 2.0, "short")]
    specs = list(RandomWindowSampler(recordings, 1.0, n_windows_per_epoch=6000, seed=0))
    share = Counter(s.recording_index for s in specs)
    assert share[0] / 6000 == pytest.approx(10 / 12, abs=0.03)  # proportional to duration
    starts = np.array([s.t0 for s in specs if s.recording_index == 0])
    assert np.histogram(starts, bins=9, range=(0, 9))[0].min() > 0.7 * len(starts) / 9


def test_random_windows_within_split_trials(synthetic: list[Recording]) -> None:
    sampler = RandomWindowSampler(synthetic, 0.5, n_windows_per_epoch=200, seed=1, intervals="train")
    for spec in sampler:
        trials = split_trials(synthetic[spec.recording_index], "train")
        inside = (trials.start <= spec.t0 + 1e-9) & (spec.t1 <= trials.end + 1e-9)
        assert inside.any()
    with pytest.raises(ValueError, match="longer than every"):
        RandomWindowSampler(synthetic, 1.5, intervals="train")  # trials last 1 s


def test_random_explicit_intervals_per_recording() -> None:
    recordings = [_recording(0.0, 10.0, "a"), _recording(0.0, 10.0, "b")]
    allowed = [Intervals(np.array([2.0, 6.0]), np.array([3.0, 9.0])), None]
    for spec in RandomWindowSampler(recordings, 0.5, n_windows_per_epoch=100, intervals=allowed):
        if spec.recording_index == 0:
            assert (2.0 <= spec.t0 and spec.t1 <= 3.0 + 1e-9) or (6.0 <= spec.t0 and spec.t1 <= 9.0 + 1e-9)
    with pytest.raises(ValueError, match="one each"):
        RandomWindowSampler(recordings, 0.5, intervals=[None])


# ---------------------------------------------------------------------- sequential
@settings(max_examples=50, deadline=None)
@given(start=st.floats(-5.0, 5.0), duration=st.floats(0.05, 12.0), window=st.floats(0.1, 4.0))
@example(start=-2.7084833000329347, duration=8.4, window=2.8)  # k * step fell one ulp short of the end
def test_sequential_windows_partition_the_recording(start: float, duration: float, window: float) -> None:
    recording = _recording(start, start + duration)
    specs = list(SequentialWindowSampler([recording], window))
    assert specs[0].t0 == recording.start and specs[-1].t1 == recording.end
    for a, b in zip(specs, specs[1:]):
        assert b.t0 == pytest.approx(a.t1, abs=1e-9)
    assert all(s.duration <= window + 1e-9 for s in specs)
    # Every spike lands in exactly one window.
    assert sum(recording.slice(s.t0, s.t1).n_spikes for s in specs) == recording.n_spikes
    # drop_last keeps whole windows only.
    if duration >= window:
        whole = list(SequentialWindowSampler([recording], window, drop_last=True))
        assert len(whole) == int(math.floor(duration / window + 1e-9))
        assert all(s.duration == pytest.approx(window) for s in whole)


def test_sequential_overlapping_step_and_short_recordings() -> None:
    recording = _recording(0.0, 3.0)
    specs = list(SequentialWindowSampler([recording], 1.0, step=0.5))
    assert [(s.t0, s.t1) for s in specs] == [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.5, 2.5), (2.0, 3.0)]
    tail = list(SequentialWindowSampler([_recording(0.0, 2.2)], 1.0, step=0.5))
    assert tail[-1].t1 == 2.2 and tail[-1].t0 == pytest.approx(1.5)
    short = [_recording(0.0, 0.5, "short"), recording]
    with pytest.warns(UserWarning, match="short"):
        whole = list(SequentialWindowSampler(short, 1.0, drop_last=True))
    assert {s.recording_index for s in whole} == {1}
    with pytest.raises(ValueError, match="longer than every"):
        SequentialWindowSampler([_recording(0.0, 0.5)], 1.0, drop_last=True)
    assert [(s.t0, s.t1) for s in SequentialWindowSampler([_recording(0.0, 0.5)], 1.0)] == [(0.0, 0.5)]


def test_sequential_shuffle_is_seeded_per_epoch() -> None:
    recordings = [_recording(0.0, 20.0)]
    sampler = SequentialWindowSampler(recordings, 1.0, shuffle=True, seed=3)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert sorted(epoch0, key=lambda s: s.t0) == sorted(epoch1, key=lambda s: s.t0) and epoch0 != epoch1
    assert list(SequentialWindowSampler(recordings, 1.0, shuffle=True, seed=3)) == epoch0


# ---------------------------------------------------------------------- trials
@settings(max_examples=25, deadline=None)
@given(before=st.floats(0.0, 0.3), after=st.floats(0.05, 0.6))
def test_trial_windows_aligned_to_event(before: float, after: float) -> None:
    recordings = _synthetic_cached()
    sampler = TrialWindowSampler(recordings, align="move_onset_time", before=before, after=after, split="test")
    assert len(sampler) == sum(int((r.trials.columns["split"] == "test").sum()) for r in recordings)
    for spec in sampler:
        trials = recordings[spec.recording_index].trials
        event = trials.columns["move_onset_time"][spec.trial]
        assert trials.columns["split"][spec.trial] == "test"
        assert spec.t0 == event - before and spec.t1 == event + after


_CACHE: list[list[Recording]] = []


def _synthetic_cached() -> list[Recording]:
    if not _CACHE:  # hypothesis forbids function-scoped fixtures; module fixtures are fine but explicit here
        _CACHE.append(generate(SyntheticConfig(n_sessions=2, n_trials=20, units_per_session=(6, 8), seed=5)).recordings)
    return _CACHE[0]


def test_trial_windows_start_and_end_alignment(synthetic: list[Recording]) -> None:
    specs = list(TrialWindowSampler(synthetic))  # default: whole trials
    assert len(specs) == 40
    for spec in specs:
        trials = synthetic[spec.recording_index].trials
        assert (spec.t0, spec.t1) == (trials.start[spec.trial], trials.end[spec.trial])
    ends = list(TrialWindowSampler(synthetic, align="end", before=0.2, after=0.1))
    assert all(s.t1 == synthetic[s.recording_index].trials.end[s.trial] + 0.1 for s in ends)


def test_trial_windows_outside_recording_or_nan_are_skipped() -> None:
    trials = Intervals(
        np.array([0.0, 2.0, 4.0, 6.0]),
        np.array([1.0, 3.0, 5.0, 7.0]),
        {"go_time": np.array([0.1, np.nan, 4.5, 6.9])},
    )
    recording = _recording(0.0, 7.05, trials=trials)
    with pytest.warns(UserWarning, match="skipped 3"):
        specs = list(TrialWindowSampler([recording], align="go_time", before=0.2, after=0.2))
    assert [s.trial for s in specs] == [2]  # trial 0 starts before the recording, 1 is NaN, 3 runs past it
    with pytest.raises(ValueError, match="every trial was skipped"), pytest.warns(UserWarning):
        TrialWindowSampler([recording], align="go_time", before=5.0, after=5.0)


def test_trial_errors_name_the_fix(synthetic: list[Recording]) -> None:
    with pytest.raises(ValueError, match="columns: \\['condition', 'move_onset_time', 'split'\\]"):
        TrialWindowSampler(synthetic, align="reward_time")
    with pytest.raises(ValueError, match="not event times"):
        TrialWindowSampler(synthetic, align="split")
    with pytest.raises(ValueError, match="available splits: \\['test', 'train', 'val'\\]"):
        TrialWindowSampler(synthetic, split="validation")
    with pytest.raises(ValueError, match="no trials table"):
        TrialWindowSampler([_recording(0.0, 1.0)])


# ---------------------------------------------------------------------- splits
def test_split_helpers(synthetic: list[Recording]) -> None:
    train = split_trials(synthetic[0], "train")
    assert len(train) == 14 and set(train.columns["split"]) == {"train"}
    per_recording = trial_split_intervals(synthetic, "val")
    assert [len(i) for i in per_recording] == [2, 2]
    with pytest.raises(ValueError, match="available splits"):
        split_trials(synthetic[0], "heldout")
    no_split = _recording(0.0, 2.0, trials=Intervals(np.array([0.0]), np.array([1.0]), {"condition": np.array([1])}))
    with pytest.raises(ValueError, match="no 'split' column \\(columns: \\['condition'\\]\\)"):
        split_trials(no_split, "train")


# ---------------------------------------------------------------------- DDP sharding
def _sampler(kind: str, n: int, rank: int, world_size: int):
    recordings = [_recording(0.0, float(n), "a")]
    if kind == "random":
        return RandomWindowSampler(recordings, 1.0, n_windows_per_epoch=n, seed=4, rank=rank, world_size=world_size)
    if kind == "sequential":
        return SequentialWindowSampler(recordings, 1.0, shuffle=True, seed=4, rank=rank, world_size=world_size)
    trials = Intervals(np.arange(n, dtype=float), np.arange(n) + 0.5)
    return TrialWindowSampler([_recording(0.0, float(n), trials=trials)], rank=rank, world_size=world_size)


@settings(max_examples=50, deadline=None)
@given(
    kind=st.sampled_from(["random", "sequential", "trial"]),
    n=st.integers(1, 40),
    world_size=st.integers(1, 6),
    epoch=st.integers(0, 3),
)
def test_shards_are_equal_disjoint_and_cover_everything(kind: str, n: int, world_size: int, epoch: int) -> None:
    full = _sampler(kind, n, 0, 1)
    full.set_epoch(epoch)
    everything = list(full)
    shards = []
    for rank in range(world_size):
        sampler = _sampler(kind, n, rank, world_size)
        sampler.set_epoch(epoch)
        shards.append(list(sampler))
        assert len(shards[-1]) == len(sampler) == math.ceil(n / world_size)
    # Interleaving the shards rebuilds the epoch's list, padded by repeating its start.
    interleaved = [shards[r][i] for i in range(len(shards[0])) for r in range(world_size)]
    assert interleaved[:n] == everything
    assert interleaved[n:] == (everything * world_size)[: len(interleaved) - n]


def test_rank_defaults_and_validation() -> None:
    sampler = RandomWindowSampler([_recording(0.0, 5.0)], 1.0)
    assert (sampler.rank, sampler.world_size) == (0, 1)  # torch.distributed is not initialised
    with pytest.raises(ValueError, match="rank"):
        RandomWindowSampler([_recording(0.0, 5.0)], 1.0, rank=2, world_size=2)
    with pytest.raises(ValueError, match="window_length"):
        SequentialWindowSampler([_recording(0.0, 5.0)], 0.0)
    with pytest.raises(ValueError, match="t1 > t0"):
        WindowSpec(0, 1.0, 1.0)


def test_specs_turn_into_windows() -> None:
    recording = make_recording(duration=10.0, n_units=4, rate_hz=20.0, seed=2)
    for spec in SequentialWindowSampler([recording], 2.5):
        window = recording.window(spec.t0, spec.t1)
        assert window.t0 == spec.t0 and window.duration == pytest.approx(2.5)
        assert np.all((window.recording.spikes.times >= 0) & (window.recording.spikes.times < 2.5))


# ---------------------------------------------------------------------- resuming mid-epoch
@given(position=st.integers(0, 20), epoch=st.integers(0, 3), world_size=st.integers(1, 3))
@settings(max_examples=30, deadline=None)
def test_resume_at_yields_the_rest_of_that_epoch_once(position: int, epoch: int, world_size: int) -> None:
    rec = _recording(0.0, 40.0)
    samplers = [RandomWindowSampler([rec], 1.0, 40, seed=3, rank=r, world_size=world_size) for r in range(world_size)]
    for sampler in samplers:
        whole = {e: list(_at(sampler, e)) for e in range(epoch, epoch + 2)}
        position_here = min(position, len(sampler))
        sampler.resume_at(epoch, position_here)
        sampler.set_epoch(epoch)
        assert list(sampler) == whole[epoch][position_here:]
        assert list(_at(sampler, epoch + 1)) == whole[epoch + 1]  # later epochs are whole
        assert list(_at(sampler, epoch)) == whole[epoch]  # and it happens once
        assert len(sampler) == len(whole[epoch])


def _at(sampler, epoch):
    sampler.set_epoch(epoch)
    return iter(sampler)


def test_resume_at_rejects_positions_outside_the_epoch() -> None:
    sampler = RandomWindowSampler([_recording(0.0, 10.0)], 1.0, 8)
    with pytest.raises(ValueError, match="resume_at"):
        sampler.resume_at(0, 9)
