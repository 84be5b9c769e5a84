"""The step-budget benchmark's split by kind of work and its budget arithmetic (fast: nothing timed)."""

import pytest


@pytest.fixture(scope="module")
def budget(benchmark_script):
    return benchmark_script("step_budget")


def test_ops_are_sorted_into_linears_attention_and_the_rest(budget):
    assert budget.kind_of("aten::addmm") == budget.kind_of("aten.mm") == "linears"
    assert budget.kind_of("aten::_scaled_dot_product_flash_attention_for_cpu_backward") == "attention"
    assert budget.kind_of("aten.scaled_dot_product_attention") == "attention"
    for op in ("aten::gelu", "aten::mmap_like", "aten::index_add_", "autograd::engine::evaluate_function: MmBackward0"):
        assert budget.kind_of(op) == "the rest", op
    split = budget.split_by_kind([("aten::mm", 2.0), ("aten::addmm", 1.0), ("aten::mul", 0.5)])
    assert split == {"linears": 3.0, "attention": 0.0, "the rest": 0.5}


def test_budget_subtracts_the_linears_and_attention_from_the_target(budget):
    share = {"linears": 0.4, "attention": 0.3, "the rest": 0.3}
    flops = {"linears": 8e9, "attention": 2e9, "the rest": 0.0}
    split = budget.Split("training step", 200.0, share, flops)
    (line,) = budget.budget_lines(split, 150.0, 100.0)
    # measured linears + attention: 140 ms -> 10 ms left for the rest, which takes 60 ms; at 100 GFLOP/s they take
    # 100 ms -> 50 ms left.
    assert "target 150 ms, measured 200 ms (1.33x the target)" in line
    assert "(140 ms) the rest may take 10 ms and takes 60 ms" in line
    assert "whole peak (100 ms) it may take 50 ms" in line
    assert budget.budget_lines(split, None, 100.0) == []
    rows = budget.table([split], 100.0)
    assert "| training step | linears | 80.0 | 40% | 8.00 | 100.0 | 1.00 |" in rows
    assert "| training step | the rest | 60.0 | 30% | 0.00 | - | - |" in rows
