"""The unified model's co-smoothing under the protocol: held-out unit rates per chunk, in the chunk's bins."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from spikefm.eval.bench import SyntheticSettings, _models
from spikefm.eval.candidates import Task, task_arrays
from spikefm.eval.protocol import Budget
from spikefm.eval.sealed import seal
from spikefm.eval.unit_rate_candidate import UnitRateCandidate, unit_rate_task


def test_it_scores_in_its_chunks_only() -> None:
    with pytest.raises(ValueError, match="--co-bps-bin 0.05"):
        UnitRateCandidate("unified", Task("co-bps", window=1.0, bin_size=0.02))
    with pytest.raises(ValueError, match="co-bps"):
        UnitRateCandidate("unified", Task("decode R2", window=1.0, bin_size=0.05, behavior_key="hand_vel"))


def test_held_out_rates_line_up_with_the_recorded_counts(tmp_path: Path) -> None:
    rec = SyntheticSettings(n_trials=30, units=(12, 12), system="lorenz").draw(5)
    dev, _ = seal(rec, name="u")
    task = unit_rate_task("unified")
    candidate = UnitRateCandidate("unified", task, max_steps=2, batch_size=8, out_dir=tmp_path)
    assert candidate.name == "unified co-bps" and task.bin_size == 0.05
    scores = candidate._scores(candidate.fit(dev, candidate.default(), seed=1), dev, "val")
    recorded = task_arrays(task, dev, "val").heldout_counts  # [K, T, N_out]
    assert scores.pred.shape == scores.truth.shape == (recorded.shape[0] * recorded.shape[1], recorded.shape[2])
    np.testing.assert_array_equal(scores.truth, recorded.reshape(scores.truth.shape))
    assert np.all(scores.pred > 0) and np.isfinite(scores.score())


def test_binned_models_take_the_sittings_co_bps_bin() -> None:
    task = Task("co-bps", window=1.0, bin_size=0.05)
    mtm, ndt1, unified = _models(["mtm", "ndt1", "unified:co-bps"], lambda m: task,
                                 Budget(trials=1, seeds=1, max_steps=2, bootstrap=10), Path("unused"))
    assert mtm.overrides["bin_size"] == ndt1.overrides["bin_size"] == 0.05
    assert isinstance(unified, UnitRateCandidate) and unified.sampler == "trials"


def test_scored_windows_never_pool_the_scored_split(tmp_path: Path) -> None:
    """Identities read held-out units on train windows only: moving a held-out unit's spikes in one val
    trial leaves every other val trial's predictions unchanged (before 2026-12-04 they pooled each other)."""
    from dataclasses import replace

    rec = SyntheticSettings(n_trials=30, units=(12, 12), system="lorenz").draw(5)
    dev, _ = seal(rec, name="u")
    candidate = UnitRateCandidate("unified", unit_rate_task("unified"), max_steps=2, batch_size=8, out_dir=tmp_path,
                                  calibration_windows=4)
    fitted = candidate.fit(dev, candidate.default(), seed=1)
    base = candidate._scores(fitted, dev, "val")
    val = np.flatnonzero(np.asarray(dev.trials.columns["split"]).astype(str) == "val")
    first = dev.trials.start[val[0]]
    heldout = np.flatnonzero(np.asarray(dev.units.heldout, bool))
    times, units = dev.spikes.times.copy(), dev.spikes.units
    hit = np.isin(units, heldout) & (times >= first) & (times < first + 1.0)
    times[hit] = first + (times[hit] - first + 0.5) % 1.0  # the first val trial's held-out spikes move
    order = np.argsort(times, kind="stable")
    moved_spikes = replace(dev.spikes, times=times[order], units=units[order])
    moved = candidate._scores(fitted, replace(dev, spikes=moved_spikes), "val")
    per_trial = base.pred.shape[0] // len(val)
    np.testing.assert_allclose(moved.pred[per_trial:], base.pred[per_trial:], rtol=1e-5, atol=1e-7)
    assert not np.array_equal(moved.truth[:per_trial], base.truth[:per_trial])


def test_unified_ablation_rows_carry_their_overrides_and_names() -> None:
    co_bps = Task("co-bps", window=1.0, bin_size=0.05)
    decode = Task("decode R2", window=1.0, bin_size=0.02, behavior_key="hand_vel")
    budget = Budget(trials=1, seeds=1, max_steps=2, bootstrap=10)
    table, untriggered = _models(["unified:co-bps:table", "unified:co-bps:untriggered"], lambda m: co_bps, budget,
                                 Path("unused"))
    assert table.overrides == {"identity": "table", "triggered_input": False}
    assert table.name == "unified co-bps [identity=table, triggered_input=False]"
    assert untriggered.overrides == {"triggered_identity": False}
    decode_table, supervised = _models(["unified:decode:table", "unified:decode:supervised"], lambda m: decode,
                                       budget, Path("unused"))
    assert decode_table.name == "unified [identity=table, triggered_input=False]" and decode_table.key() != supervised.key()
    assert supervised.overrides == {"schemes": (), "count_weight": 0.0} and supervised.metric == "decode R2"
    binned, transformer = _models(["unified:decode:binned", "unified:co-bps:transformer"],
                                  {"unified:decode:binned": decode, "unified:co-bps:transformer": co_bps}.get,
                                  budget, Path("unused"))  # fmt: skip
    assert binned.name == "unified [input_bin=0.05]" and transformer.overrides == {"core": "transformer"}


def test_decoding_models_get_co_smoothing_rows_of_their_own_name() -> None:
    co_bps = Task("co-bps", window=1.0, bin_size=0.02)
    ndt3, neds = _models(["ndt3:cosmoothing", "neds:cosmoothing"], lambda m: co_bps,
                         Budget(trials=1, seeds=1, max_steps=2, bootstrap=10), Path("unused"))
    assert (ndt3.name, neds.name) == ("ndt3 co-bps", "neds co-bps")
    assert ndt3.model == "ndt3" and ndt3.metric == "co-bps" and neds.model == "neds"


def _forward_candidate(tmp_path: Path):
    from spikefm.eval.mtm_candidate import masked_task
    from spikefm.eval.unit_rate_candidate import UnitForwardCandidate

    rec = SyntheticSettings(n_trials=30, units=(12, 12), system="lorenz").draw(5)
    dev, _ = seal(rec, name="u")
    task = masked_task("forward_pred", window=1.0, bin_size=0.05)
    candidate = UnitForwardCandidate("unified", task, max_steps=2, batch_size=8, out_dir=tmp_path,
                                     overrides={"forward_chunks": 4}, calibration_windows=4)
    return candidate, dev, task


def test_forward_prediction_scores_every_units_last_200_ms(tmp_path: Path) -> None:
    candidate, dev, task = _forward_candidate(tmp_path)
    assert candidate.name == "unified forward_pred [forward_chunks=4]"
    scores = candidate._scores(candidate.fit(dev, candidate.default(), seed=1), dev, "val")
    recorded = task_arrays(task, dev, "val").counts  # [K, 20, N]: every unit, held-in and held-out
    np.testing.assert_array_equal(scores.truth, recorded[:, -4:].reshape(scores.truth.shape))
    assert np.all(scores.pred > 0) and np.isfinite(scores.score())


def test_forward_prediction_never_reads_the_predicted_200_ms(tmp_path: Path) -> None:
    """Moving every spike inside one val trial's last 200 ms changes its targets, never its predictions."""
    from dataclasses import replace

    candidate, dev, _ = _forward_candidate(tmp_path)
    fitted = candidate.fit(dev, candidate.default(), seed=1)
    base = candidate._scores(fitted, dev, "val")
    val = np.flatnonzero(np.asarray(dev.trials.columns["split"]).astype(str) == "val")
    start = dev.trials.start[val[0]] + 0.8
    times, units = dev.spikes.times.copy(), dev.spikes.units
    hit = (times >= start) & (times < start + 0.2)
    times[hit] = start + (times[hit] - start + 0.1) % 0.2  # shifted by 100 ms inside the window
    order = np.argsort(times, kind="stable")
    moved = candidate._scores(fitted, replace(dev, spikes=replace(dev.spikes, times=times[order], units=units[order])),
                              "val")
    np.testing.assert_allclose(moved.pred, base.pred, rtol=1e-5, atol=1e-7)
    assert not np.array_equal(moved.truth, base.truth)


def test_the_forward_row_is_wired_in_the_bench() -> None:
    from spikefm.eval.bench import MODEL_TASKS
    from spikefm.eval.unit_rate_candidate import UnitForwardCandidate

    assert MODEL_TASKS["unified:forward_pred"] == "forward_pred bps"
    task = Task("forward_pred bps", window=1.0, bin_size=0.05)
    (row,) = _models(["unified:forward_pred"], lambda m: task, Budget(trials=1, seeds=1, max_steps=2, bootstrap=10),
                     Path("unused"))
    assert isinstance(row, UnitForwardCandidate) and row.name == "unified forward_pred"
    (ablation,) = _models(["unified:forward_pred:forward4"], lambda m: task,
                          Budget(trials=1, seeds=1, max_steps=2, bootstrap=10), Path("unused"))
    assert ablation.overrides == {"forward_chunks": 4} and ablation.name == "unified forward_pred [forward_chunks=4]"
    with pytest.raises(ValueError, match="forward_pred bps"):
        UnitForwardCandidate("unified", Task("co-bps", window=1.0, bin_size=0.05))


def test_forward_prediction_needs_no_held_out_units(tmp_path: Path) -> None:
    """MtM's task hides held-out units when there are some; a session without them is still scored (co-bps is not)."""
    from dataclasses import replace

    candidate, dev, _ = _forward_candidate(tmp_path)
    dev = replace(dev, units=replace(dev.units, heldout=np.zeros(dev.n_units, bool)))
    scores = candidate._scores(candidate.fit(dev, candidate.default(), seed=1), dev, "val")
    assert scores.truth.shape[1] == dev.n_units and np.isfinite(scores.score())
