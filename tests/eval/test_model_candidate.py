"""A registered model as a protocol row: a decoding row's model reads the units that co-smoothing holds out."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from spikefm.data.recording import SpikeTrains
from spikefm.data.synthetic import SyntheticConfig, generate
from spikefm.eval.cache import cache_key
from spikefm.eval.candidates import Task
from spikefm.eval.metrics import DECODE_R2
from spikefm.eval.model_candidate import ModelCandidate


def _without_unit(rec, unit: int):
    keep = rec.spikes.units != unit
    return replace(rec, spikes=SpikeTrains(rec.spikes.times[keep], rec.spikes.units[keep]))


def test_the_unified_decoding_row_reads_units_flagged_held_out(tmp_path) -> None:
    """Regression: the unified model (as NDT3 and NEDS) kept flagged units out of its input, so its decoding rows
    read a quarter fewer units than the Wiener filters, POYO and POSSM they were compared with: removing a flagged
    unit's spikes changed none of its predictions."""
    rec = generate(SyntheticConfig(n_sessions=1, n_trials=12, units_per_session=(10, 10), seed=5)).recordings[0]
    flagged = int(np.flatnonzero(rec.units.heldout)[0])
    row = ModelCandidate("unified", Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel"),
                         max_steps=2, out_dir=tmp_path)
    assert row.key()["inputs"] == "every unit"
    fitted = row.fit(rec, {**row.default(), "steps": 2}, seed=0)
    assert row.validate(fitted, rec) != row.validate(fitted, _without_unit(rec, flagged))


def test_a_changed_preset_default_makes_a_new_cache_key(tmp_path, monkeypatch) -> None:
    """Regression: the key named the preset and the overrides only, so when a default changed (``input_ridge``
    became the unified model's on 2026-12-05) a resumed run reused rows cached under the old default."""
    from spikefm.models.registry import get_spec

    row = ModelCandidate("unified", Task(DECODE_R2, window=1.0, bin_size=0.02, behavior_key="hand_vel"),
                         max_steps=2, out_dir=tmp_path)
    before = cache_key(**row.key())
    assert row.key()["config"]["input_ridge"] == 0.1
    monkeypatch.setitem(get_spec("unified").presets, "tiny", {**get_spec("unified").presets["tiny"], "input_ridge": None})
    assert row.key()["config"]["input_ridge"] is None
    assert cache_key(**row.key()) != before
