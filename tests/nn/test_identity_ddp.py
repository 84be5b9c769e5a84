"""Keyed tables under DDP: pre-sized tables grow in place; fixed tables refuse to replace their parameter."""

import pytest
import torch
import torch.distributed as dist
from torch import nn

from spikefm.nn.identity import KeyedEmbedding, UnitEmbedding, fix_vocabularies, unit_keys


def test_extend_within_reserved_rows_keeps_the_same_parameter():
    table = UnitEmbedding(dim=4, keys=unit_keys("s1", ["a", "b"]), capacity=5)
    weight, before = table.weight, table.weight.detach().clone()
    table.extend(unit_keys("s2", ["a", "b"]))
    assert table.weight is weight and table.capacity == 5 and len(table) == 4
    torch.testing.assert_close(table.weight.detach(), before)  # reserved rows keep their initial values
    assert table.lookup(["s2/b"]).tolist() == [3]


def test_fixed_table_refuses_to_grow_with_a_clear_message():
    table = KeyedEmbedding(dim=4, keys=["a"])
    fix_vocabularies(nn.Sequential(table))
    with pytest.raises(RuntimeError, match="pre-size the table"):
        table.extend(["b"])
    table.unfix()
    table.extend(["b"])
    assert len(table) == 2


def test_reserved_table_round_trips_through_the_state_dict():
    table = KeyedEmbedding(dim=3, keys=["a", "b"], capacity=4)
    fresh = KeyedEmbedding(dim=3, keys=["a"])
    fresh.load_state_dict(table.state_dict())
    assert fresh.keys == ["a", "b"] and fresh.capacity == 4
    torch.testing.assert_close(fresh.embed(["b"]), table.embed(["b"]))


def test_a_new_session_trains_under_ddp_when_the_table_was_pre_sized(tmp_path):
    # One-process gloo group: DDP's reducer holds the parameters it wrapped; a replaced
    # parameter would silently stop being reduced. Pre-sized rows keep the parameter.
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        torch.manual_seed(0)
        table = KeyedEmbedding(dim=4, keys=["s1/a"], capacity=3)
        model = nn.parallel.DistributedDataParallel(table)
        fix_vocabularies(model)
        table.extend(["s2/a"])
        out = model(table.lookup(["s2/a"]))
        out.sum().backward()
        assert table.weight.grad is not None and table.weight.grad[1].abs().sum() > 0
        with pytest.raises(RuntimeError, match="fixed"):
            table.extend(["s3/a", "s3/b"])
    finally:
        dist.destroy_process_group()
