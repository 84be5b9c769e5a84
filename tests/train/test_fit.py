import torch

from spikefm.eval.evaluate import predict, score
from spikefm.models.registry import build_config, get_spec
from spikefm.train.config import RunConfig
from spikefm.train.fit import fit, load_checkpoint


def _recipe(tmp_path, name, sessions):
    return RunConfig.from_dict({
        "name": name,
        "model": {"name": name},
        "data": {"synthetic": {"n_sessions": 2, "units_per_session": [14, 18], "n_trials": 30}, "sessions": sessions},
        "trainer": {"max_steps": 6, "batch_size": 8, "val_every": 3, "warmup_steps": 2, "out_dir": str(tmp_path),
                    "progress": False},
    })


def test_fit_writes_logs_and_a_checkpoint_that_rebuilds_the_model(tmp_path):
    result = fit(_recipe(tmp_path, "ndt1", ["synth-0"]))
    assert (result.run_dir / "logs" / "metrics.csv").exists() and result.checkpoint.exists()
    module, config = load_checkpoint(result.checkpoint)
    assert config.model.name == "ndt1"
    spec = get_spec("ndt1")
    tokenizer = spec.make_tokenizer(build_config("ndt1", "tiny"))
    rec = result.recordings[0]
    torch.manual_seed(0)
    ours = predict(result.module.model, tokenizer, rec, split="test")
    rebuilt = predict(module.model, tokenizer, rec, split="test")
    torch.testing.assert_close(torch.from_numpy(ours.rates), torch.from_numpy(rebuilt.rates))
    assert set(score(ours)) == {"co-bps"}


def test_fit_decoder_across_sessions_and_score(tmp_path):
    result = fit(_recipe(tmp_path, "poyo", []))
    assert len(result.recordings) == 2
    spec = get_spec("poyo")
    tokenizer = spec.make_tokenizer(build_config("poyo", "tiny"))
    predictions = predict(result.module.model, tokenizer, result.recordings[1], split="test")
    assert predictions.behavior.shape[-1] == 2 and set(score(predictions)) == {"decode R2"}
    # Windows with 0.5 s of context before each trial: query times say which queries are the trial's.
    context = predict(result.module.model, tokenizer, result.recordings[1], split="test", window=1.5, before=0.5)
    assert context.query_times.shape == context.behavior.shape[:2]
    inside = context.query_mask & (context.query_times >= 0.5)
    assert inside.sum() == predictions.query_mask.sum()
    torch.testing.assert_close(torch.from_numpy(context.behavior_true[inside]),
                               torch.from_numpy(predictions.behavior_true[predictions.query_mask]))


def _trained_weights(tmp_path, name, **trainer):
    config = _recipe(tmp_path / name, "ndt1", ["synth-0"])
    for key, value in trainer.items():
        setattr(config.trainer, key, value)
    result = fit(config)
    return result, {k: v.clone() for k, v in result.module.state_dict().items()}


def test_ema_weights_are_the_result_and_training_itself_is_unchanged(tmp_path):
    _, plain = _trained_weights(tmp_path, "plain", max_steps=8)
    _, last_only = _trained_weights(tmp_path, "tiny_decay", max_steps=8, ema_decay=1e-12)
    result, averaged = _trained_weights(tmp_path, "ema", max_steps=8, ema_decay=0.9)
    for name in plain:  # decay ~0: the average is the last iterate
        torch.testing.assert_close(last_only[name], plain[name])
    assert any(not torch.allclose(averaged[n], plain[n]) for n in plain if plain[n].is_floating_point())
    saved = torch.load(result.checkpoint, weights_only=True)
    for name in plain:  # the checkpoint holds the average
        torch.testing.assert_close(saved["state_dict"][name], averaged[name])


def test_keep_best_restores_the_lowest_validation_checkpoint(tmp_path):
    import csv

    result, weights = _trained_weights(tmp_path, "best", max_steps=12, val_every=2, keep_best="val/loss")
    rows = list(csv.DictReader(open(result.run_dir / "logs" / "metrics.csv")))
    val = [(float(r["val/loss"]), int(r["step"])) for r in rows if r.get("val/loss")]
    assert len(val) >= 5
    best = torch.load(result.run_dir / "checkpoints" / "best.ckpt", weights_only=True)
    assert best["global_step"] == min(val)[1] + 1  # logged at the step index, saved after it
    final = torch.load(result.checkpoint, weights_only=True)["state_dict"]
    for name, value in weights.items():
        torch.testing.assert_close(value, best["state_dict"][name])
        torch.testing.assert_close(final[name], value)


def test_ema_in_a_run_shorter_than_its_warmup_still_returns_trained_weights(tmp_path):
    _, plain = _trained_weights(tmp_path, "plain", max_steps=3, warmup_steps=10)
    _, averaged = _trained_weights(tmp_path, "ema", max_steps=3, warmup_steps=10, ema_decay=0.999)
    for name in plain:  # averaging starts at the last step, whose weights the first update copies
        torch.testing.assert_close(averaged[name], plain[name])
