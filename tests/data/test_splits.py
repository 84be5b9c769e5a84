from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.data.binned import from_binned
from spikefm.data.recording import DataError
from spikefm.data.splits import (
    contiguous_blocks,
    hold_out_units,
    merge_split_runs,
    ordered_trial_splits,
    shuffle_trial_splits,
)


def _rec(n_bins: int = 100, n_units: int = 8):
    return from_binned(np.ones((n_bins, n_units), int), 0.1, start=5.0)


@settings(max_examples=40, deadline=None)
@given(n_bins=st.integers(200, 4000), block=st.sampled_from([0.5, 1.0, 2.0]))
def test_blocks_tile_time_and_splits_follow_time_order(n_bins, block):
    rec = contiguous_blocks(_rec(n_bins), block=block)
    trials = rec.trials
    np.testing.assert_allclose(trials.start[1:], trials.end[:-1])
    assert trials.start[0] == rec.start and trials.end[-1] <= rec.end + 1e-9
    order = {"train": 0, "val": 1, "test": 2}
    ranks = [order[s] for s in trials.columns["split"]]
    assert ranks == sorted(ranks) and set(ranks) == {0, 1, 2}


def test_merge_joins_touching_blocks_of_one_split_only():
    rec = contiguous_blocks(_rec(), block=1.0)
    keep = np.ones(len(rec.trials), bool)
    keep[3] = False  # a dropped block splits the training run in two
    merged = merge_split_runs(replace(rec, trials=rec.trials.select(keep))).trials
    assert merged.columns["split"].tolist() == ["train", "train", "val", "test"]
    np.testing.assert_allclose(merged.start, [5.0, 9.0, 12.0, 13.0])
    np.testing.assert_allclose(merged.end, [8.0, 12.0, 13.0, 15.0])


def test_merge_of_chosen_splits_keeps_the_other_splits_blocks():
    rec = contiguous_blocks(_rec(), block=1.0)
    merged = merge_split_runs(rec, splits=("train",)).trials
    labels = rec.trials.columns["split"].astype(str)
    assert merged.columns["split"].tolist() == ["train"] + labels[labels != "train"].tolist()
    np.testing.assert_allclose(merged.start[1:], rec.trials.start[labels != "train"])


def test_ordered_relabelling_after_dropping_blocks_gives_every_split_its_share():
    rec = contiguous_blocks(_rec(200), block=1.0)
    kept = replace(rec, trials=rec.trials.select(np.arange(20) < 10))  # only the first half is kept
    assert ordered_trial_splits(kept).trials.columns["split"].tolist() == ["train"] * 7 + ["val"] + ["test"] * 2


def test_shuffled_splits_are_seeded_and_keep_the_proportions():
    rec = contiguous_blocks(_rec(1000), block=1.0)
    a = shuffle_trial_splits(rec, seed=3).trials.columns["split"]
    b = shuffle_trial_splits(rec, seed=3).trials.columns["split"]
    np.testing.assert_array_equal(a, b)
    assert {s: int(np.sum(a == s)) for s in ("train", "val", "test")} == {"train": 70, "val": 10, "test": 20}
    assert not np.array_equal(a, rec.trials.columns["split"])


def test_held_out_units_are_seeded_and_sized():
    rec = hold_out_units(_rec(n_units=107), fraction=0.25, seed=0)
    assert rec.units.heldout.sum() == 27
    again = hold_out_units(_rec(n_units=107), fraction=0.25, seed=0)
    np.testing.assert_array_equal(rec.units.heldout, again.units.heldout)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r: contiguous_blocks(r, block=100.0), "cannot cut"),
        (lambda r: contiguous_blocks(r, block=1.0, fractions={"train": 0.5, "test": 0.2}), "summing to 1"),
        (lambda r: shuffle_trial_splits(r, seed=0), "'trials' is missing"),
        (lambda r: merge_split_runs(r), "'trials.split' is missing"),
        (lambda r: hold_out_units(r, fraction=0.01, seed=0), "leaves none"),
    ],
)
def test_impossible_splits_are_clear_errors(call, message):
    with pytest.raises(DataError, match=message):
        call(_rec())
