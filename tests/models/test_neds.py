"""NEDS: masked modalities are invisible, held-out units are never seen, eval decodes by default."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from spikefm.models.neds import NEDS, NEDSConfig, neds_objective
from spikefm.models.registry import build_config, get_spec
from spikefm.tokenize.base import collate


@pytest.fixture(autouse=True)
def _one_thread():
    # The CI machine is small and shared; one intra-op thread keeps these tests fast and stable.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(dataset, **overrides):
    spec = get_spec("neds")
    config = build_config("neds", "tiny", **overrides)
    torch.manual_seed(0)
    model = spec.model_cls(config, **spec.sizes_from_data(dataset.recordings, config))
    tokenizer = spec.make_tokenizer(config)
    windows = [rec.window(t0, t0 + 1.0) for rec in dataset.recordings for t0 in rec.trials.start[:3]]
    return model.eval(), collate([tokenizer(w) for w in windows])


def _heldout(batch) -> torch.Tensor:
    """bool [B, N]: held-out units of each sample on the padded unit axis."""
    n_units = batch.unit_offsets.diff()
    grid = torch.zeros(batch.batch_size, batch.values.shape[-1], dtype=torch.bool)
    grid[torch.arange(grid.shape[1])[None] < n_units[:, None]] = batch.unit_extras["heldout"]
    return grid


def _with(batch, values=None, behavior=None):
    targets = dict(batch.targets) if behavior is None else {"hand_vel": behavior}
    return replace(batch, values=batch.values if values is None else values, targets=targets)


def test_decoding_mode_ignores_behaviour_and_is_the_eval_default(small_dataset):
    model, batch = _build(small_dataset)
    with torch.no_grad():
        default, decoding = model(batch), model(batch, mode="decoding")
        noisy = model(_with(batch, behavior=torch.randn_like(batch.targets["hand_vel"]) * 3), mode="decoding")
        spiky = model(_with(batch, values=batch.values + 2), mode="decoding")
    torch.testing.assert_close(default["behavior"], decoding["behavior"])
    torch.testing.assert_close(noisy["behavior"], decoding["behavior"])
    torch.testing.assert_close(noisy["log_rates"], decoding["log_rates"])
    assert not torch.allclose(spiky["behavior"], decoding["behavior"])  # decoding reads the spikes


def test_encoding_mode_ignores_spikes(small_dataset):
    model, batch = _build(small_dataset)
    with torch.no_grad():
        encoding = model(batch, mode="encoding")
        spiky = model(_with(batch, values=torch.randint_like(batch.values, 0, 9)), mode="encoding")
        moved = model(_with(batch, behavior=batch.targets["hand_vel"] + 1.0), mode="encoding")
    torch.testing.assert_close(spiky["log_rates"], encoding["log_rates"])
    torch.testing.assert_close(spiky["behavior"], encoding["behavior"])
    assert not torch.allclose(moved["log_rates"], encoding["log_rates"])  # encoding reads the behaviour


@pytest.mark.parametrize("mode", ["decoding", "self-spike", "random_token"])
def test_heldout_units_are_never_seen_but_always_scored(small_dataset, mode):
    model, batch = _build(small_dataset)
    held = _heldout(batch)
    torch.manual_seed(1)
    out = model(batch, mode=mode)
    torch.manual_seed(1)
    perturbed = model(_with(batch, values=batch.values + 5 * held[:, None, :]), mode=mode)
    torch.testing.assert_close(perturbed["log_rates"], out["log_rates"])
    torch.testing.assert_close(perturbed["behavior"], out["behavior"])
    assert held.any() and bool(out["spike_mask"][held[:, None, :].expand_as(out["spike_mask"])].all())
    unit_valid = torch.arange(batch.values.shape[-1])[None] < batch.unit_offsets.diff()[:, None]
    assert not out["spike_mask"][~unit_valid[:, None, :].expand_as(out["spike_mask"])].any()  # padding never scored


def test_training_masks_follow_the_scheme(small_dataset):
    model, batch = _build(small_dataset, schemes=("random_token",))
    model.train()
    out = model(batch)
    observed = ~_heldout(batch) & (torch.arange(batch.values.shape[-1])[None] < batch.unit_offsets.diff()[:, None])
    spike_steps = (out["spike_mask"] & observed[:, None]).any(-1)  # [B, T]
    behavior_steps = out["behavior_mask"].any(-1)
    assert torch.equal(spike_steps, behavior_steps)  # the same steps hidden in both modalities
    assert torch.allclose(behavior_steps.float().mean(1), torch.full((batch.batch_size,), 0.3), atol=0.02)
    loss, metrics = neds_objective(out, batch)
    loss.backward()
    assert torch.isfinite(loss) and metrics["behavior_mse"] > 0 and model.mask_token.grad is not None


def test_sessions_have_their_own_stitchers(small_dataset):
    model, batch = _build(small_dataset)
    sizes = {r.session: r.n_units for r in small_dataset.recordings}
    assert model.session_units == sizes and len(set(sizes.values())) > 1
    out = model(batch)
    for b, session in enumerate(batch.sessions):  # rates beyond a session's units are padding zeros
        assert torch.all(out["log_rates"][b, :, sizes[session] :] == 0)
    with pytest.raises(ValueError, match="already known"):
        model.add_session(small_dataset.recordings[0])


def test_config_and_mode_validation(small_dataset):
    with pytest.raises(ValueError, match="schemes"):
        NEDSConfig(schemes=("encoding", "telepathy"))
    model, batch = _build(small_dataset)
    with pytest.raises(ValueError, match="mode"):
        model(batch, mode="nope")
    assert isinstance(model, NEDS) and np.isfinite(float(neds_objective(model(batch), batch)[0].detach()))


def test_recipe_parses_and_builds():
    from pathlib import Path

    from spikefm.train.config import load_recipe

    recipe = load_recipe(Path(__file__).parents[2] / "configs" / "neds_tiny.yaml")
    config = build_config(recipe.model.name, recipe.model.preset, **recipe.model.overrides)
    assert recipe.model.name == "neds" and config.max_bins * config.bin_size >= recipe.data.window
    assert get_spec("neds").make_tokenizer(config, **recipe.tokenizer).config.query == "bins"


def test_recalibration_trains_only_the_new_sessions_stitchers_and_token(small_dataset):
    """add_session + freeze_for_recalibration: the new session's four stitchers and session row move, nothing else."""
    spec = get_spec("neds")
    config = build_config("neds", "tiny", dropout=0.0, embed_dropout=0.0)
    old, new = small_dataset.recordings[0], replace(small_dataset.recordings[1], session="unseen")
    model = spec.model_cls(config, **spec.sizes_from_data([old], config))
    with pytest.raises(KeyError, match="add_session"):
        model.freeze_for_recalibration(new)
    model.add_session(new)
    tokenizer = spec.make_tokenizer(config)
    batch = collate([tokenizer(new.window(t0, t0 + 1.0)) for t0 in new.trials.start[:4]])
    before = {k: v.detach().clone() for k, v in model.state_dict().items() if torch.is_tensor(v)}
    optimizer = torch.optim.SGD(model.freeze_for_recalibration(new), lr=0.5)
    model.train()
    for _ in range(3):
        loss, _ = neds_objective(model(batch), batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert {k.split(".")[0] for k in moved} <= {"spike_in", "spike_out", "behavior_in", "behavior_out",
                                                "session_embedding"}
    assert all("unseen" in k for k in moved if not k.startswith("session_embedding"))
    assert any(k.startswith("spike_in") for k in moved) and "session_embedding.weight" in moved
    row = model.session_embedding.keys.index(old.session)
    torch.testing.assert_close(after["session_embedding.weight"][row], before["session_embedding.weight"][row])
