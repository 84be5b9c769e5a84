"""The calibration-set probe's scoring against true and mirrored behaviour, and its table (fast: no training)."""

from types import SimpleNamespace

import numpy as np
import pytest


@pytest.fixture(scope="module")
def probe(benchmark_script):
    return benchmark_script("calibration_sets")


def test_a_decode_of_the_mirrored_trajectory_scores_one_against_the_mirror_only(probe) -> None:
    dt = 0.005
    t = np.arange(400) * dt
    true = np.stack([np.sin(2 * np.pi * t), np.cos(3 * np.pi * t)], axis=1)  # [T, B]
    mirrored = -true
    starts, query_times = np.array([0.0, 1.0]), np.tile(np.arange(0, 1.0, 0.01), (2, 1))  # [K], [K, Q]
    rows = np.floor((starts[:, None] + query_times) / dt).astype(int)
    out = SimpleNamespace(query_mask=np.ones(query_times.shape, bool), starts=starts, query_times=query_times,
                          behavior=mirrored[rows])  # a decoder that outputs the mirror image
    assert probe.r2_at_queries(out, mirrored, dt) == pytest.approx(1.0)
    assert probe.r2_at_queries(out, true, dt) < -3  # sign flipped: R2 = 1 - 4 on a zero-mean signal
    out.query_mask[1] = False  # masked queries are left out
    assert probe.r2_at_queries(out, mirrored, dt) == pytest.approx(1.0)


def test_the_table_marks_the_sets_decoded_closer_to_the_mirror(probe) -> None:
    row = {"variant": "spint", "world": 7, "seed": 0}
    for i, name in enumerate(probe.SETS):
        flipped = name == "trials 16-23"
        row.update({name: -1.0 if flipped else 0.5 + 0.01 * i, f"{name}, noise-free": -1.0 if flipped else 0.6,
                    f"{name}, mirrored": 0.6 if flipped else -1.0})
    table = probe.render([row])
    assert "| spint | 7 | 0 | 0.500 | 0.510 | -1.000 (mirrored 0.60) | 0.530 |" in table
    assert table.rstrip().endswith("| 0.216 | -1.000 |")  # mean and worst of the five 8-trial sets
