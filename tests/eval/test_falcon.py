import sys
from pathlib import Path

import numpy as np
import pytest

from spikefm.data.falcon import read_falcon
from spikefm.data.recording import DataError
from spikefm.eval.falcon import FalconProtocol, falcon_r2, run_falcon

sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from falcon_files import write_falcon_file  # noqa: E402


def test_falcon_r2_equals_falcon_challenge_on_the_same_arrays():
    evaluator = pytest.importorskip("falcon_challenge.evaluator")  # --no-deps; needs hydra-core, edit-distance
    rng = np.random.default_rng(0)
    lens = {"20121004": [300, 200], "20121017": [250]}
    preds, targets, masks = {}, {}, {}
    for session, parts in lens.items():
        n = sum(parts)
        targets[session] = rng.normal(size=(n, 3)) * [1.0, 2.0, 0.5]
        preds[session] = targets[session] + rng.normal(size=(n, 3))
        masks[session] = rng.random(n) > 0.2
    sessions = sorted(lens)
    mask = np.concatenate([masks[s] for s in sessions])
    official = evaluator.FalconEvaluator.compute_metrics_regression(
        np.concatenate([preds[s] for s in sessions]), np.concatenate([targets[s] for s in sessions])[mask],
        mask, lens)
    ours = falcon_r2(preds, targets, masks)
    assert ours["R2 Mean"] == pytest.approx(official["R2 Mean"], abs=1e-12)
    assert ours["R2 Std."] == pytest.approx(official["R2 Std."], abs=1e-12)


def _synthetic_falcon_files(folder: Path) -> list[Path]:
    """Two synthetic sessions (shared latents, different neurons) as M2-layout files: calib + minival/eval."""
    from spikefm.data.synthetic import SyntheticConfig, generate

    dataset = generate(SyntheticConfig(n_sessions=2, units_per_session=(16, 16), n_trials=24, seed=0))
    paths = []
    for rec, role in zip(dataset.recordings, ("held-in", "held-out")):
        half = 120 * 0.02 * 10  # 24 s per file
        for part, t0 in (("calib", 0.0), ("minival" if role == "held-in" else "eval", half)):
            n_bins = int(round(half / 0.02))
            stamps = t0 + np.arange(n_bins) * 0.02
            series = rec.behavior["hand_vel"]
            target = np.stack([np.interp(stamps, series.timestamps, series.values[:, d]) for d in range(2)], 1)
            spikes = [t[(t >= t0) & (t < t0 + half)] for t in rec.spikes.per_unit(rec.n_units)]
            name = f"sub-Synth-{role}-{part}_ses-{rec.session.replace('synth-', 'S')}.nwb"
            paths.append(write_falcon_file(folder / name, "m2", n_bins=n_bins, spikes=spikes, target=target,
                                           t0=t0, session=rec.session))
    return paths


@pytest.fixture(scope="module")
def falcon_recordings(tmp_path_factory):
    return [read_falcon(p) for p in _synthetic_falcon_files(tmp_path_factory.mktemp("falcon"))]


@pytest.mark.parametrize("model, adaptation", [("spint", "zero_shot"), ("poyo", "recalibrate")])
def test_falcon_files_train_adapt_and_score_end_to_end(falcon_recordings, model, adaptation):
    recordings = falcon_recordings
    assert sum(r.n_spikes for r in recordings) > 0
    protocol = FalconProtocol(model=model, train_steps=3, adapt_steps=2, batch_size=4, calibration_windows=8)
    result = run_falcon(protocol, recordings, log=lambda _: None)
    assert result.adaptation == adaptation
    assert set(result.held_in) == {"R2 Mean", "R2 Std.", "S0 R2"} and set(result.held_out) == {"R2 Mean", "R2 Std.", "S1 R2"}
    assert np.isfinite(result.held_in["R2 Mean"]) and np.isfinite(result.held_out["R2 Mean"])
    assert "| held-out |" in result.markdown()


def test_falcon_protocol_needs_roles_it_can_read(tmp_path):
    rec = read_falcon(write_falcon_file(tmp_path / "anonymous.nwb", "m1"))
    with pytest.raises(DataError, match="role"):
        run_falcon(FalconProtocol(model="spint"), [rec], log=lambda _: None)


def test_falcon_command_scores_falcon_files(falcon_recordings):
    from typer.testing import CliRunner

    from spikefm.cli import app

    paths = [r.source for r in falcon_recordings]
    result = CliRunner().invoke(app, ["falcon", *paths, "--model", "poyo", "--set", "train_steps=2",
                                      "--set", "adapt_steps=1", "--set", "batch_size=4"], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "| poyo | recalibrate | held-in |" in result.output and "| held-out |" in result.output
    result = CliRunner().invoke(app, ["falcon", *paths, "--set", "steps=2"])
    assert result.exit_code == 2 and "train_steps" in result.output
