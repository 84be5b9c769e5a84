"""What every candidate shares: a decoding row reads every recorded unit, whatever the held-out flags say."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.candidates import ScoredBySplit, decoding_inputs
from spikefm.eval.metrics import CO_BPS, DECODE_R2, POSITION_R2


@pytest.fixture(scope="module")
def flagged():
    rec = generate(SyntheticConfig(n_sessions=1, n_trials=6, units_per_session=(8, 8), seed=3)).recordings[0]
    assert np.asarray(rec.units.heldout).any()
    return rec


@pytest.mark.parametrize("metric", [DECODE_R2, POSITION_R2])
def test_a_decoding_metric_sees_no_held_out_flag(flagged, metric) -> None:
    view = decoding_inputs(flagged, metric)
    assert not np.asarray(view.units.heldout).any() and view.n_units == flagged.n_units
    np.testing.assert_array_equal(view.spikes.times, flagged.spikes.times)
    assert np.asarray(flagged.units.heldout).any()  # the caller's recording is untouched


def test_co_smoothing_keeps_its_flags(flagged) -> None:
    assert decoding_inputs(flagged, CO_BPS) is flagged


def test_validate_and_predict_hand_a_decoding_row_every_unit(flagged) -> None:
    @dataclass
    class Recorder(ScoredBySplit):
        metric_name: str

        def __post_init__(self) -> None:
            self.metric, self.seen = self.metric_name, []

        def _scores(self, fitted, rec, split):
            self.seen.append((split, bool(np.asarray(rec.units.heldout).any())))
            return _Score()

    class _Score:
        def score(self) -> float:
            return 0.0

    for metric, flags_left in ((DECODE_R2, False), (CO_BPS, True)):
        row = Recorder(metric)
        row.validate(None, flagged)
        row.predict(None, flagged)
        assert row.seen == [("val", flags_left), ("test", flags_left)]
