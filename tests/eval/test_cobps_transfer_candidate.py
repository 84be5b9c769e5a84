"""Co-smoothing transfer rows (MtM): pretrain on a world's other sessions, meet the new session with new stitchers,
score co-bps of its held-out units against smoothing fitted on the same k trials."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from spikefm.data.recording import DataError
from spikefm.eval import transfer_candidate
from spikefm.eval.bench import recording_transfer_suite, transfer_suite
from spikefm.eval.cache import ResultCache
from spikefm.eval.cobps_transfer_candidate import CoBpsTransferCandidate, cobps_transfer_task
from spikefm.eval.protocol import Budget
from spikefm.eval.sealed import seal
from spikefm.eval.transfer_candidate import Pretraining, TransferWorld, transfer_task

TINY = Budget(trials=1, seeds=1, max_steps=3, bootstrap=10)


@pytest.fixture(scope="module")
def world():
    return TransferWorld.quick().draw(12)


def test_models_that_cannot_meet_a_new_session_are_refused_before_pretraining(world) -> None:
    pretrain, target = world
    sources = {target.session: pretrain}
    with pytest.raises(ValueError, match="ndt1 cannot meet a new session"):
        CoBpsTransferCandidate("ndt1", "finetune", 2, cobps_transfer_task("ndt1"), sources)
    with pytest.raises(ValueError, match="poyo does not predict held-out units"):
        CoBpsTransferCandidate("poyo", "finetune", 2, cobps_transfer_task("mtm"), sources)
    with pytest.raises(ValueError, match="needs a gradient step"):
        CoBpsTransferCandidate("mtm", "zero_shot", 2, cobps_transfer_task("mtm"), sources)
    with pytest.raises(ValueError, match="scores 'co-bps'"):
        CoBpsTransferCandidate("mtm", "finetune", 2, transfer_task(), sources)


def test_the_adapted_model_reads_no_held_out_unit_of_a_scored_trial(world) -> None:
    """Scrambling the held-out units' spikes on the scored trials leaves the held-out predictions unchanged."""
    pretrain, target = world
    candidate = CoBpsTransferCandidate("mtm", "recalibrate", 4, cobps_transfer_task("mtm"), {target.session: pretrain},
                                       Pretraining(steps=3, batch_size=8))
    dev, _ = seal(target, name="t")
    fitted = candidate.fit(dev, {"lr": 1e-2, "steps": 3}, seed=0)
    first = candidate._scores(fitted, dev, "val")
    held = np.flatnonzero(dev.units.heldout)
    spikes, end = dev.spikes, float(dev.trials.end.max())
    moved = np.isin(spikes.units, held) & (spikes.times < end)
    shifted = np.where(moved, (spikes.times + 0.137) % end, spikes.times)  # every held-out spike moves
    order = np.argsort(shifted, kind="stable")
    scrambled = replace(dev, spikes=replace(spikes, times=shifted[order], units=spikes.units[order]))
    again = candidate._scores(fitted, scrambled, "val")
    np.testing.assert_allclose(first.pred, again.pred, rtol=1e-5, atol=1e-6)
    assert not np.array_equal(first.truth, again.truth)  # the scored targets did move


def test_the_suite_scores_mtm_against_smoothing_of_its_k_and_decoders_against_filters(tmp_path: Path) -> None:
    transfer_candidate._PRETRAINED.clear()
    result = transfer_suite(["mtm:finetune", "poyo:recalibrate"], TINY, tmp_path, ResultCache(tmp_path / "c"),
                            TransferWorld.quick(), draws=(3001,), ks=(2,), log=lambda *_: None).to_json()
    rows = {r["name"]: r for r in result["rows"]}
    assert {"mtm finetune k=2", "poyo recalibrate k=2", "smoothing k=2", "smoothing causal k=2",
            "wiener causal k=2", "kalman k=2"} <= set(rows)
    assert rows["mtm finetune k=2"]["metric"] == "co-bps" and rows["poyo recalibrate k=2"]["metric"] != "co-bps"
    assert all(np.isfinite(r["score"]) for r in result["rows"])
    for c in result["comparisons"]:
        assert rows[c["model"]]["metric"] == rows[c["baseline"]]["metric"]
        assert c["model"].rsplit(" ", 1)[1] == c["baseline"].rsplit(" ", 1)[1]  # same k=...


def test_co_smoothing_rows_alone_get_no_decoding_baselines(world) -> None:
    # mtm:recalibrate,mtm:finetune once brought Wiener / Kalman rows along (rows were counted by model, not by row)
    from spikefm.eval.bench import _transfer_candidates

    pretrain, target = world
    candidates = _transfer_candidates(["mtm:recalibrate", "mtm:finetune"], (2,), transfer_task(),
                                      {target.session: pretrain}, Pretraining(steps=3))
    assert [c.name for c in candidates] == ["smoothing k=2", "smoothing causal k=2", "mtm recalibrate k=2",
                                            "mtm finetune k=2"]


def test_a_recording_without_held_out_units_is_refused_before_pretraining(world, tmp_path: Path) -> None:
    pretrain, target = world
    unflagged = replace(target, units=replace(target.units, heldout=np.zeros(target.n_units, bool)))
    with pytest.raises(DataError, match="flags none"):
        recording_transfer_suite(["mtm:finetune"], TINY, tmp_path, ResultCache(tmp_path / "c"), unflagged,
                                 pretrain, transfer_task(), ks=(2,), log=lambda *_: None)
