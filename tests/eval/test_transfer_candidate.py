"""Transfer rows under the protocol: pretraining on a world's other sessions, adaptation with k trials of the new
one, each row compared only with baselines fitted on the same k trials."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from spikefm.eval import transfer_candidate
from spikefm.eval.bench import transfer_suite
from spikefm.eval.cache import ResultCache
from spikefm.eval.protocol import Budget
from spikefm.eval.sealed import seal
from spikefm.eval.transfer_candidate import Pretraining, TransferCandidate, TransferWorld, transfer_task

TINY = Budget(trials=1, seeds=1, max_steps=3, bootstrap=10)


@pytest.fixture(scope="module")
def world():
    return TransferWorld.quick().draw(11)


def test_worlds_name_their_sessions_apart() -> None:
    a, b = TransferWorld.quick().draw(1), TransferWorld.quick().draw(2)
    names = [r.session for r in (*a[0], a[1], *b[0], b[1])]
    assert len(set(names)) == len(names) and a[1].session == "lorenzw1-2"


def test_a_model_without_the_conditions_hook_is_refused(world) -> None:
    pretrain, target = world
    with pytest.raises(ValueError, match="cannot run zero_shot"):
        TransferCandidate("poyo", "zero_shot", 2, transfer_task(), {target.session: pretrain})
    with pytest.raises(ValueError, match="unknown transfer condition"):
        TransferCandidate("spint", "scratch", 2, transfer_task(), {target.session: pretrain})


def test_a_model_that_does_not_decode_is_refused_before_pretraining(world) -> None:
    # ndt2 (masked modelling) once pretrained and adapted, then crashed at scoring: it predicts no behaviour.
    pretrain, target = world
    with pytest.raises(ValueError, match=r"ndt2 does not decode behaviour.*models that do: .*ndt2_decoder"):
        TransferCandidate("ndt2", "recalibrate", 2, transfer_task(), {target.session: pretrain})


def test_zero_shot_reads_no_label_of_the_new_session(world) -> None:
    pretrain, target = world
    candidate = TransferCandidate("spint", "zero_shot", 4, transfer_task(), {target.session: pretrain},
                                  Pretraining(steps=3, batch_size=8))
    dev, _ = seal(target, name="t")
    scrambled = replace(dev, behavior={k: replace(v, values=np.zeros_like(v.values)) for k, v in dev.behavior.items()})
    first = candidate._scores(candidate.fit(dev, {}, seed=1), dev, "val")
    again = candidate._scores(candidate.fit(scrambled, {}, seed=1), dev, "val")
    np.testing.assert_array_equal(first.pred, again.pred)


def test_the_suite_pairs_each_row_with_baselines_of_its_k_and_pretrains_once_per_seed(tmp_path: Path) -> None:
    transfer_candidate._PRETRAINED.clear()
    result = transfer_suite(["spint:zero_shot", "poyo:recalibrate"], TINY, tmp_path, ResultCache(tmp_path / "c"),
                            TransferWorld.quick(), draws=(3001,), ks=(2, 3), log=lambda *_: None).to_json()
    models = {r["name"] for r in result["rows"] if r["role"] == "model"}
    assert models == {f"{m} k={k}" for m in ("spint zero_shot", "poyo recalibrate") for k in (2, 3)}
    assert all(np.isfinite(r["score"]) for r in result["rows"])
    for c in result["comparisons"]:
        assert c["model"].rsplit(" ", 1)[1] == c["baseline"].rsplit(" ", 1)[1]  # same k=...
    # 2 models x (the search seed on world 0 + the one final seed on world 3001), shared by every k and trial
    assert len(transfer_candidate._PRETRAINED) == 2 * 2


def test_transfer_suite_from_the_command_line(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from spikefm.cli import app

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the protocol pins its own count (one by default): multi-threaded training is not
    try:  # bit-reproducible between processes on CPU
        result = CliRunner().invoke(app, ["bench", "transfer-lorenz", "--quick", "--budget", "1", "--seeds", "1",
                                          "--steps", "2", "--models", "spint:zero_shot", "--out", str(tmp_path)])
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "transfer_lorenz_quick.json").read_text())
    assert payload["environment"]["torch_threads"] == 1
    assert {r["name"] for r in payload["rows"] if r["role"] == "model"} == {"spint zero_shot k=2"}
    assert {r["data"][0]["name"] for r in payload["rows"]} == {"lorenzw3001-2"}


def test_the_unified_model_is_paired_with_each_parent_on_the_parents_condition_and_k() -> None:
    from spikefm.eval.bench import unified_versus_parents

    task, sources = transfer_task(), {}
    rows = [TransferCandidate(m, c, k, task, sources) for k in (4, 8)
            for m, c in (("unified", "zero_shot"), ("unified", "recalibrate"), ("spint", "zero_shot"),
                         ("poyo", "recalibrate"))]
    assert sorted(unified_versus_parents(rows)) == sorted(
        [(f"unified zero_shot k={k}", f"spint zero_shot k={k}") for k in (4, 8)]
        + [(f"unified recalibrate k={k}", f"poyo recalibrate k={k}") for k in (4, 8)])


def test_a_transfer_row_of_a_unified_ablation_is_paired_with_the_full_row_not_the_parents() -> None:
    from spikefm.eval.bench import _transfer_candidates, unified_versus_parents
    from spikefm.eval.protocol import ablation_of

    rows = _transfer_candidates(["unified:zero_shot", "unified:zero_shot:onepass", "spint:zero_shot"], (8,),
                                transfer_task(), {}, Pretraining())
    models = [c for c in rows if hasattr(c, "condition")]
    ablation = next(c for c in models if c.overrides)
    assert ablation.name == "unified zero_shot k=8 [triggered_input=False]"
    assert ablation_of(ablation.name) == "unified zero_shot k=8"
    assert ablation.config.triggered_input is False and ablation.key()["overrides"] == {"triggered_input": False}
    assert "overrides" not in next(c for c in models if c.model == "spint").key()  # earlier rows keep their keys
    assert unified_versus_parents(rows) == [("unified zero_shot k=8", "spint zero_shot k=8")]
    with pytest.raises(ValueError, match="ablations are the unified model's"):
        _transfer_candidates(["spint:zero_shot:onepass"], (8,), transfer_task(), {}, Pretraining())


def test_a_recipe_candidate_row_is_paired_with_the_parents_and_with_the_recipe() -> None:
    from spikefm.eval.bench import _transfer_candidates, unified_versus_parents
    from spikefm.eval.protocol import ablation_of

    rows = _transfer_candidates(["unified:zero_shot", "unified:zero_shot:whitened", "unified:zero_shot:onepass",
                                 "spint:zero_shot"], (8,), transfer_task(), {}, Pretraining())
    whitened = next(c for c in rows if getattr(c, "overrides", None) == {"input_ridge": 0.1})
    assert whitened.config.input_ridge == 0.1 and ablation_of(whitened.name) == "unified zero_shot k=8"
    assert sorted(unified_versus_parents(rows)) == [("unified zero_shot k=8", "spint zero_shot k=8"),
                                                    (whitened.name, "spint zero_shot k=8")]  # not the one-pass row


def test_the_command_line_sets_the_curve_over_k(tmp_path: Path) -> None:
    """`--ks` gives the transfer suite its numbers of new-session trials; impossible ks fail before any training."""
    import json

    from typer.testing import CliRunner

    from spikefm.cli import app

    runner = CliRunner()
    args = ["bench", "transfer-lorenz", "--quick", "--budget", "1", "--seeds", "1", "--steps", "2", "--models", ""]
    result = runner.invoke(app, [*args, "--ks", "4,1", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "transfer_lorenz_quick.json").read_text())
    assert {r["name"].rsplit(" ", 1)[1] for r in payload["rows"]} == {"k=1", "k=4"}
    for bad in ("0", "4,4", "22"):  # the quick world's new session has 21 train trials
        result = runner.invoke(app, [*args, "--ks", bad, "--out", str(tmp_path / "bad")])
        assert result.exit_code == 2 and "ks" in result.output, result.output
        assert not (tmp_path / "bad").exists()
    result = runner.invoke(app, ["bench", "synthetic-lorenz", "--quick", "--ks", "4", "--out", str(tmp_path / "no")])
    assert result.exit_code == 2 and "transfer" in result.output, result.output


def test_fresh_worlds_are_drawn_only_after_the_recipes_are_frozen(tmp_path: Path, monkeypatch) -> None:
    import json

    drawn: list[int] = []
    real = TransferWorld.draw

    def spy(self, seed):
        frozen = tmp_path / "transfer_lorenz_frozen_recipes.json"
        drawn.append(seed)
        assert seed == 0 or frozen.exists(), f"world {seed} drawn before the recipes were frozen"
        return real(self, seed)

    monkeypatch.setattr(TransferWorld, "draw", spy)
    transfer_suite(["spint:zero_shot"], TINY, tmp_path, ResultCache(tmp_path / "c"), TransferWorld.quick(),
                   draws=(3001,), ks=(2,), log=lambda *_: None)
    assert drawn == [0, 3001]
    assert json.loads((tmp_path / "transfer_lorenz_frozen_recipes.json").read_text())["selected_on"] == "lorenzw0-2"


def test_transfer_between_recording_files_from_the_command_line(tmp_path: Path) -> None:
    """`bench --data NEW --transfer-from OLD`: pretrain on one file's train trials, adapt and score on the other's;
    the unified model is paired with SPINT; a source named like the target is refused before any training."""
    import json

    from typer.testing import CliRunner

    from spikefm.cli import app
    from spikefm.data.store import write_recording

    pretrain, target = TransferWorld.quick().draw(21)
    write_recording(target, tmp_path / "new.h5")
    write_recording(pretrain[0], tmp_path / "old.h5")
    write_recording(replace(pretrain[1], session=target.session), tmp_path / "same_name.h5")
    args = ["bench", "--data", str(tmp_path / "new.h5"), "--quick", "--budget", "1", "--seeds", "1", "--steps", "2",
            "--models", "unified:zero_shot,spint:zero_shot", "--ks", "2"]
    result = CliRunner().invoke(app, [*args, "--transfer-from", str(tmp_path / "old.h5"), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    payload = json.loads((tmp_path / "r" / "transfer_new_quick.json").read_text())
    assert {r["name"] for r in payload["rows"] if r["role"] == "model"} == {"unified zero_shot k=2", "spint zero_shot k=2"}
    assert {r["data"][0]["name"] for r in payload["rows"]} == {target.session}
    assert [(p["model"], p["versus"]) for p in payload["pairs"]] == [("unified zero_shot k=2", "spint zero_shot k=2")]
    result = CliRunner().invoke(app, [*args, "--transfer-from", str(tmp_path / "same_name.h5"),
                                      "--out", str(tmp_path / "bad")])
    assert result.exit_code == 2 and "same_name.h5" in result.output and "same session" in result.output, result.output
    too_many = [*args[:-1], "99", "--transfer-from", str(tmp_path / "old.h5"), "--out", str(tmp_path / "bad")]
    result = CliRunner().invoke(app, too_many)
    assert result.exit_code == 2 and "fewer than k = 99" in result.output, result.output


def test_adaptation_trains_with_the_process_thread_count(world, monkeypatch) -> None:
    # a load-aware count (the trainer's default) chose 2 threads on a quiet machine, and training on 2 threads is not
    # bit-reproducible between processes: two processes sharing a cache chose different settings (thirty-second
    # sitting). The row now trains with the count of its process (``spikefm bench --threads``, 1 by default).
    from spikefm.train import threads

    pretrain, target = world
    monkeypatch.setattr(threads, "default_threads", lambda *args, **kwargs: 2)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        candidate = TransferCandidate("poyo", "recalibrate", 2, transfer_task(), {target.session: pretrain},
                                      Pretraining(steps=2, batch_size=4))
        dev, _ = seal(target, name="t")
        candidate.fit(dev, {"lr": 1e-3, "steps": 2}, seed=0)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_a_unified_transfer_row_is_not_paired_with_a_row_scored_by_another_metric() -> None:
    """MtM's fine-tuning row is scored by co-bps, the unified model's by decode R2: same condition and k, no pair
    (pairing them made the protocol refuse the run)."""
    from spikefm.eval.bench import _transfer_candidates, unified_versus_parents

    rows = _transfer_candidates(["unified:finetune", "mtm:finetune", "poyo:finetune"], (8,), transfer_task(), {},
                                Pretraining())
    assert unified_versus_parents(rows) == [("unified finetune k=8", "poyo finetune k=8")]


def test_a_zero_shot_row_decodes_from_the_units_flagged_held_out(world) -> None:
    """Regression: the unified model kept units flagged held-out (co-smoothing's) out of its input, so its transfer
    rows decoded from fewer units than SPINT's, POYO's and the Wiener filters' on the same session."""
    from spikefm.data.recording import SpikeTrains

    pretrain, target = world
    candidate = TransferCandidate("unified", "zero_shot", 4, transfer_task(), {target.session: pretrain},
                                  Pretraining(steps=2, batch_size=8))
    assert candidate.key()["inputs"] == "every unit"
    dev, _ = seal(target, name="t")
    flagged = int(np.flatnonzero(dev.units.heldout)[0])
    keep = dev.spikes.units != flagged
    without = replace(dev, spikes=SpikeTrains(dev.spikes.times[keep], dev.spikes.units[keep]))
    fitted = candidate.fit(dev, {}, seed=1)
    assert candidate.validate(fitted, dev) != candidate.validate(fitted, without)


def test_a_transfer_row_key_holds_its_resolved_config(world) -> None:
    """Regression: a changed default (not an override) left a transfer row's cache key unchanged."""
    pretrain, target = world
    candidate = TransferCandidate("unified", "zero_shot", 4, transfer_task(), {target.session: pretrain},
                                  Pretraining(steps=2, batch_size=8))
    plain = TransferCandidate("unified", "zero_shot", 4, transfer_task(), {target.session: pretrain},
                              Pretraining(steps=2, batch_size=8), overrides={"input_ridge": None})
    assert candidate.key()["config"]["input_ridge"] == 0.1 and plain.key()["config"]["input_ridge"] is None
    assert list(candidate.key()["config"]["behavior_keys"]) == ["hand_vel"]
