"""Across DDP ranks, one epoch covers every window once: padded (some twice) or cut (none twice)."""

from collections import Counter

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data.recording import Recording, SpikeTrains, Units
from spikefm.data.sampling import SequentialWindowSampler


def _recording(seconds: int) -> Recording:
    return Recording(SpikeTrains(np.array([0.5]), np.array([0])), Units(np.array(["a"])), start=0.0, end=float(seconds))


def _epoch(seconds: int, world: int, epoch: int, drop_uneven: bool) -> list[list]:
    shards = []
    for rank in range(world):
        sampler = SequentialWindowSampler([_recording(seconds)], 1.0, shuffle=True, seed=3, rank=rank,
                                          world_size=world, drop_uneven=drop_uneven)
        sampler.set_epoch(epoch)
        shards.append([(w.t0, w.t1) for w in sampler])
    return shards


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), world=st.integers(1, 4), epoch=st.integers(0, 3), drop=st.booleans())
def test_shards_are_equal_and_cover_each_window_once(n, world, epoch, drop):
    shards = _epoch(n, world, epoch, drop)
    assert len({len(s) for s in shards}) == 1  # equal lengths: no rank waits on another in an all-reduce
    counts = Counter(w for shard in shards for w in shard)
    everything = {(float(t), float(t) + 1.0) for t in range(n)}
    if n % world == 0:
        assert counts == Counter(everything)  # exactly once each
    elif drop:
        assert max(counts.values(), default=1) == 1 and len(everything - set(counts)) == n % world < world
    else:
        assert set(counts) == everything and sum(counts.values()) - n == world - n % world


def test_cut_windows_change_with_the_epoch():
    missing = [frozenset({(float(t), float(t) + 1) for t in range(10)} - {w for s in _epoch(10, 4, e, True) for w in s})
               for e in range(4)]
    assert len(set(missing)) > 1
