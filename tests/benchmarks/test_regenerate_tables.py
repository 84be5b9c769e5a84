"""benchmarks/regenerate_tables.py: the manifest behind the merged synthetic table, its commands, one quick run."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def regen(benchmark_script):
    return benchmark_script("regenerate_tables")


def test_the_manifest_lists_exactly_the_files_the_docs_merge_in_their_order(regen) -> None:
    text = (ROOT / "docs" / "results" / "protocol.md").read_text()
    block = text[text.index("spikefm bench --merge benchmarks/results/"):]
    merged = re.findall(r"--merge benchmarks/results/(\S+\.json)", block[: block.index("```")])
    sittings = regen.read_manifest()
    assert [s.results for s in sittings] == merged
    assert all((ROOT / "benchmarks" / "results" / s.results).exists() for s in sittings)
    assert all(s.args[0] in ("synthetic", "synthetic-lorenz", "transfer-lorenz") for s in sittings)


def test_quick_commands_drop_the_budget_and_keep_models_and_draws(regen, tmp_path: Path) -> None:
    sitting = regen.Sitting("x.json", "test", ("transfer-lorenz", "--models", "a,b", "--ks", "4,64", "--budget", "6",
                                                "--seeds", "3", "--steps", "1000", "--draws", "1,2"))
    full = sitting.command(tmp_path)
    assert full[3:] == ["bench", *sitting.args, "--out", str(tmp_path / "x")]
    quick = sitting.command(tmp_path, quick=True)[3:]
    assert quick == ["bench", "transfer-lorenz", "--models", "a,b", "--draws", "1,2", "--quick", "--out", str(tmp_path / "x")]


def test_a_manifest_with_a_repeated_file_or_a_missing_field_is_refused(regen, tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("- {results: a.json, sitting: one, args: synthetic}\n- {results: a.json, sitting: two, args: synthetic}\n")
    with pytest.raises(ValueError, match="listed twice"):
        regen.read_manifest(path)
    path.write_text("- {results: a.json, args: synthetic}\n")
    with pytest.raises(ValueError, match="lacks"):
        regen.read_manifest(path)


def test_one_sitting_runs_quick_and_merges(regen, tmp_path: Path) -> None:
    sittings = [s for s in regen.read_manifest() if s.results == "protocol_synthetic_ndt2.json"]
    json_path, md_path = regen.regenerate(sittings, tmp_path, quick=True, log=lambda *_: None)
    merged = json.loads(json_path.read_text())
    assert (tmp_path / "results" / "protocol_synthetic_ndt2.json").exists()
    assert "ndt2" in md_path.read_text()
    assert (tmp_path / "protocol_synthetic_ndt2" / "cache").resolve() == (tmp_path / "cache").resolve()
    assert [m["name"] for m in merged["models"]] == ["ndt2"]
    assert merged["sources"][0]["budget"]["seeds"] == 2  # the quick budget, not the sitting's
    recorded = json.loads((tmp_path / "results" / "protocol_synthetic_ndt2.json").read_text())["command"]
    assert recorded.startswith("spikefm bench synthetic --models ndt2") and recorded.endswith("--quick --out " +
                                                                                             str(tmp_path / "protocol_synthetic_ndt2"))
