"""The protocol's result cache: entries survive concurrent writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikefm.eval.cache import ResultCache
from spikefm.eval.candidates import TrialScores

KEY = "ab" + "0" * 22


def _interleave(monkeypatch, other_write) -> None:
    """Run ``other_write`` (another sitting's put of the same key) between this writer's write and its rename."""
    real = Path.replace

    def replace_after_the_other_writer(self: Path, target: Path) -> Path:
        monkeypatch.setattr(Path, "replace", real)
        other_write()
        return real(self, target)

    monkeypatch.setattr(Path, "replace", replace_after_the_other_writer)


def test_two_sittings_sharing_a_cache_may_write_one_entry_at_once(tmp_path: Path, monkeypatch) -> None:
    mine, theirs = ResultCache(tmp_path), ResultCache(tmp_path)
    _interleave(monkeypatch, lambda: theirs.put(KEY, {"chosen": 2}))
    mine.put(KEY, {"chosen": 1})
    assert mine.get(KEY) == {"chosen": 1}  # the last rename wins; both entries were whole
    assert not list(tmp_path.rglob("*.tmp"))


def test_two_sittings_may_write_one_set_of_test_predictions_at_once(tmp_path: Path, monkeypatch) -> None:
    scores = TrialScores("decode R2", np.ones((4, 2)), np.zeros((4, 2)), np.arange(4), 4)
    mine, theirs = ResultCache(tmp_path), ResultCache(tmp_path)
    _interleave(monkeypatch, lambda: theirs.put_scores(KEY, scores, {"seed": 1}))
    mine.put_scores(KEY, scores, {"seed": 1})
    loaded, meta = mine.get_scores(KEY)
    np.testing.assert_array_equal(loaded.pred, scores.pred)
    assert meta["seed"] == 1 and not list(tmp_path.rglob("*.tmp"))


def test_a_damaged_entry_names_its_file(tmp_path: Path) -> None:
    cache = ResultCache(tmp_path)
    cache.put(KEY, {"chosen": 1})
    path = next(cache.root.rglob("*.json"))
    path.write_text('{"chosen": 1}{"chosen": 2}')  # two writers' bytes in one file (the old shared temporary name)
    with pytest.raises(ValueError, match=f"{path.name} is damaged.*delete it"):
        cache.get(KEY)
