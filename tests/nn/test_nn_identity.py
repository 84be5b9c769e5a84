import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spikefm.nn import (
    MTM_PROMPTS,
    ContextTokens,
    IDEncoder,
    KeyedEmbedding,
    PromptEmbedding,
    UnitEmbedding,
    unit_keys,
)

FAST = settings(max_examples=25, deadline=None)


def test_lookup_and_embed():
    table = UnitEmbedding(dim=3, keys=unit_keys("s1", ["a", "b", "c"]))
    assert table.keys == ["s1/a", "s1/b", "s1/c"] and len(table) == 3 and "s1/b" in table
    idx = table.lookup(["s1/c", "s1/a"])
    assert idx.dtype == torch.long and idx.tolist() == [2, 0]
    assert table.lookup(["s1/c", "s1/a"]) is idx  # cached
    torch.testing.assert_close(table.embed_session("s1", ["c", "a"]), table.weight[[2, 0]])
    torch.testing.assert_close(table(idx[None]), table.weight[[2, 0]][None])


def test_unknown_key_error_says_how_to_extend():
    table = UnitEmbedding(dim=3, keys=unit_keys("s1", [0, 1]))
    with pytest.raises(KeyError, match=r"s9/4.*extend\(keys\).*freeze_except"):
        table.lookup(["s1/0", "s9/4"])
    with pytest.raises(TypeError, match="strings"):
        table.extend([3])


def test_extend_keeps_old_rows_and_invalidates_cache():
    table = KeyedEmbedding(dim=2, keys=["x", "y"])
    old = table.weight.detach().clone()
    cached = table.lookup(["y"])
    table.extend(["y", "z", "z"])  # existing and duplicate keys are added once
    assert table.keys == ["x", "y", "z"]
    torch.testing.assert_close(table.weight[:2].detach(), old)
    assert table.lookup(["y"]) is not cached


@pytest.mark.parametrize(
    "opt", [lambda p: torch.optim.Adam(p, lr=0.1), lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9)], ids=["adam", "sgd"]
)
def test_freeze_except_trains_only_new_rows(opt):
    torch.manual_seed(0)
    table = UnitEmbedding(dim=4, keys=unit_keys("s1", range(3)))
    new = unit_keys("s2", range(2))
    table.extend(new)
    table.freeze_except(new)
    assert table.trainable_keys == new
    optimizer = opt(table.parameters())  # built after extend, as documented
    before = table.weight.detach().clone()
    for _ in range(2):
        optimizer.zero_grad()
        out = table.embed(unit_keys("s1", range(3)) + new)
        out.square().sum().backward()
        assert torch.all(table.weight.grad[:3] == 0) and torch.all(table.weight.grad[3:] != 0)
        optimizer.step()
    after = table.weight.detach()
    torch.testing.assert_close(after[:3], before[:3], atol=0, rtol=0)
    assert not torch.allclose(after[3:], before[3:])
    table.unfreeze()
    table.weight.grad = None
    table.embed(["s1/0"]).sum().backward()
    assert torch.all(table.weight.grad[0] != 0)


def test_state_dict_round_trip_restores_vocabulary_and_rows():
    table = UnitEmbedding(dim=4, keys=unit_keys("s1", range(3)))
    table.extend(unit_keys("s2", ["u7"]))
    table.freeze_except(["s2/u7"])
    state = table.state_dict()
    fresh = UnitEmbedding(dim=4)  # empty: the checkpoint says what it holds
    fresh.load_state_dict(state)
    assert fresh.keys == table.keys and fresh.trainable_keys == ["s2/u7"]
    torch.testing.assert_close(fresh.embed(["s2/u7", "s1/1"]), table.embed(["s2/u7", "s1/1"]))
    bigger = UnitEmbedding(dim=4, keys=unit_keys("other", range(9)))
    bigger.load_state_dict(state)
    assert bigger.keys == table.keys and bigger.weight.shape == (4, 4)


def test_state_dict_inside_a_model_and_deepcopy_pickle():
    model = torch.nn.ModuleDict({"units": UnitEmbedding(dim=2, keys=["s/a"]), "proj": torch.nn.Linear(2, 2)})
    model["units"].extend(["s/b"])
    model["units"].freeze_except(["s/b"])
    clone = torch.nn.ModuleDict({"units": UnitEmbedding(dim=2), "proj": torch.nn.Linear(2, 2)})
    clone.load_state_dict(model.state_dict())
    assert clone["units"].keys == ["s/a", "s/b"]
    for copied in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        copied["units"].embed(["s/a", "s/b"]).sum().backward()
        assert torch.all(copied["units"].weight.grad[0] == 0)


def test_context_tokens():
    ctx = ContextTokens(dim=3, fields=("session", "subject"), keys={"session": ["s1", "s2"], "subject": ["m"]})
    out = ctx({"session": ["s2", "s1"], "subject": ["m", "m"]})
    assert out.shape == (2, 2, 3)
    torch.testing.assert_close(out[:, 0], ctx.tables["session"].weight[[1, 0]])
    ctx.tables["subject"].extend(["r"])
    assert ctx({"session": ["s1"], "subject": ["r"]}).shape == (1, 2, 3)
    with pytest.raises(KeyError, match="subject"):
        ctx({"session": ["s1"]})
    with pytest.raises(ValueError, match="unknown fields"):
        ContextTokens(dim=3, fields=("session",), keys={"task": ["reach"]})


def test_prompt_embedding_is_mtm_four_modes():
    prompts = PromptEmbedding(dim=5)
    assert prompts.keys == list(MTM_PROMPTS) and prompts.weight.shape == (4, 5)
    assert prompts.embed(["causal", "neuron"]).shape == (2, 5)


@FAST
@given(st.permutations(list(range(5))), st.integers(0, 2**16))
def test_idencoder_permutation_equivariant(perm, seed):
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    enc = IDEncoder(num_bins=6, dim=4, hidden_dim=8)
    counts = torch.poisson(torch.rand(2, 5, 3, 6, generator=gen) * 3, generator=gen)
    unit_mask = torch.rand(2, 5, generator=gen) < 0.8
    trial_mask = torch.rand(2, 5, 3, generator=gen) < 0.7
    perm = torch.tensor(perm)
    out = enc(counts, unit_mask, trial_mask)
    out_perm = enc(counts[:, perm], unit_mask[:, perm], trial_mask[:, perm])
    torch.testing.assert_close(out_perm, out[:, perm])


def test_idencoder_units_do_not_interact_and_masks_work():
    torch.manual_seed(0)
    enc = IDEncoder(num_bins=4, dim=3, hidden_dim=8)
    counts = torch.poisson(torch.ones(1, 3, 2, 4))
    out = enc(counts)
    changed = counts.clone()
    changed[0, 2] = 9
    torch.testing.assert_close(enc(changed)[:, :2], out[:, :2])
    # a masked calibration trial, whatever it holds, changes nothing
    extra = torch.cat([counts, 50 * torch.ones(1, 3, 1, 4)], dim=2)
    trial_mask = torch.tensor([[True, True, False]])
    torch.testing.assert_close(enc(extra, trial_mask=trial_mask), out)
    # pooling is a mean over trials: duplicating every trial changes nothing
    torch.testing.assert_close(enc(torch.cat([counts, counts], 2)), out)
    masked = enc(counts, unit_mask=torch.tensor([[True, False, True]]))
    assert torch.all(masked[0, 1] == 0)
    with pytest.raises(ValueError, match="num_bins"):
        enc(torch.zeros(1, 3, 2, 5))


def test_id_encoder_identities_differ_between_units_at_init():
    # Regression: PyTorch's default Linear init shrank the identities' across-unit spread to
    # ~1% of an activity token's, so SPINT started (and stayed) nearly blind to unit identity.
    torch.manual_seed(0)
    encoder = IDEncoder(num_bins=50, dim=64)
    rates = torch.rand(1, 60, 1, 1) * 0.4  # 60 units, 0-20 Hz in 20 ms bins
    counts = torch.poisson(rates.expand(1, 60, 8, 50))  # [B, U, R, T]
    identity = encoder(counts)[0]  # [U, D]
    activity = torch.nn.Linear(50, 64)(torch.log1p(counts[0, :, 0]))  # SPINT's activity token, [U, D]
    spread, reference = identity.std(0).mean(), activity.std(0).mean()
    assert spread > 0.2 * reference, (float(spread), float(reference))
