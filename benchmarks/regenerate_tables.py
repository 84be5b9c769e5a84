"""Regenerate the merged synthetic table from nothing: every sitting's `spikefm bench` run, then the merge.

`benchmarks/protocol_sittings.yaml` lists every results file behind the README's synthetic table and
`docs/results/protocol.md`, with the one command that regenerates it (the sitting's rows in a single run). This
script runs them in that order (``--jobs N``: N at a time), each in its own folder under ``--out`` with one shared
result cache (``<out>/cache``: baselines scored on the same draws are searched once, and an interrupted run resumes
where it stopped), copies each run's results JSON to ``<out>/results/<file>``, and merges them into
``<out>/merged.{json,md}`` (``spikefm bench --merge``), optionally rewriting the marked tables of ``--into`` files.

From scratch on the 2-core CPU the recorded sittings took ~20 CPU-hours (each file's ``wall_seconds`` /
``cpu_hours``; ``--dry-run`` prints the commands and those recorded costs). ``--quick`` runs every command at the
CI-sized budget (``spikefm bench --quick``: tiny draws, 2 trials, 2 seeds; the numbers mean nothing), ``--only``
a subset by results file.

    python benchmarks/regenerate_tables.py --jobs 2 --out runs/tables
    python benchmarks/regenerate_tables.py --dry-run
"""

from __future__ import annotations

import os
import sys

# benchmarks/tokenize.py would shadow the standard library's tokenize when run as a script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import argparse  # noqa: E402
import json  # noqa: E402
import shlex  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Sequence  # noqa: E402

import yaml  # noqa: E402

HERE = Path(__file__).resolve().parent
MANIFEST = HERE / "protocol_sittings.yaml"
RECORDED = HERE / "results"
BUDGET_FLAGS = ("--budget", "--seeds", "--steps", "--ks")  # dropped by --quick (its budget and k replace them)


@dataclass(frozen=True)
class Sitting:
    """One results file and the `spikefm bench` arguments that regenerate it."""

    results: str
    sitting: str
    args: tuple[str, ...]

    @property
    def stem(self) -> str:
        return Path(self.results).stem

    def command(self, out: Path, quick: bool = False) -> list[str]:
        """The `spikefm bench` command line writing into ``out / stem``."""
        args = list(self.args)
        if quick:
            kept, skip = [], False
            for arg in args:
                if skip:
                    skip = False
                elif arg in BUDGET_FLAGS:
                    skip = True
                else:
                    kept.append(arg)
            args = [*kept, "--quick"]
        return [sys.executable, "-m", "spikefm.cli", "bench", *args, "--out", str(out / self.stem)]


def read_manifest(path: Path = MANIFEST) -> list[Sitting]:
    """The manifest's entries, checked: distinct results files, each with a `spikefm bench` suite and arguments."""
    entries = yaml.safe_load(path.read_text())
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a list of sittings")
    sittings = []
    for i, entry in enumerate(entries):
        missing = {"results", "sitting", "args"} - set(entry or {})
        if missing:
            raise ValueError(f"{path}: entry {i} lacks {sorted(missing)}")
        sittings.append(Sitting(str(entry["results"]), str(entry["sitting"]), tuple(shlex.split(entry["args"]))))
    names = [s.results for s in sittings]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"{path}: results files listed twice: {repeated}")
    return sittings


def recorded_cost(sitting: Sitting, recorded: Path = RECORDED) -> tuple[float, float] | None:
    """(wall hours, CPU hours) the recorded results file reports, or None without one."""
    path = recorded / sitting.results
    if not path.exists():
        return None
    payload = json.loads(path.read_text())
    cpu = sum(row.get("cpu_hours") or 0.0 for row in payload.get("rows", []))
    return (payload.get("wall_seconds") or 0.0) / 3600, cpu


def run_sitting(sitting: Sitting, out: Path, quick: bool, log=print) -> Path:
    """Run one sitting's command (its folder's cache linked to the shared one); returns its results copy."""
    folder = out / sitting.stem
    folder.mkdir(parents=True, exist_ok=True)
    cache = folder / "cache"
    if not cache.exists():
        (out / "cache").mkdir(parents=True, exist_ok=True)
        cache.symlink_to((out / "cache").resolve(), target_is_directory=True)
    command = sitting.command(out, quick)
    start = time.perf_counter()
    with (folder / "log.txt").open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT)
    if done.returncode != 0:
        raise RuntimeError(f"{sitting.results}: `{shlex.join(command[2:])}` failed (exit {done.returncode}); "
                           f"see {folder / 'log.txt'}")
    produced = [p for p in folder.glob("*.json") if not p.name.endswith("_frozen_recipes.json")]
    if len(produced) != 1:
        raise RuntimeError(f"{sitting.results}: expected one results JSON in {folder}, found {[p.name for p in produced]}")
    target = out / "results" / sitting.results
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(produced[0], target)
    log(f"{sitting.results}: {time.perf_counter() - start:.0f} s")
    return target


def regenerate(sittings: Sequence[Sitting], out: Path, *, jobs: int = 1, quick: bool = False,
               into: Sequence[Path] = (), log=print) -> tuple[Path, Path]:
    """Run every sitting (``jobs`` at a time), then merge their results in manifest order."""
    from spikefm.eval.bench import merge_results

    if jobs < 1:
        raise ValueError(f"jobs must be >= 1, got {jobs}")
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        paths = list(pool.map(lambda s: run_sitting(s, out, quick, log), sittings))
    json_path, md_path, _ = merge_results(paths, out, list(into))
    return json_path, md_path


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--out", type=Path, default=Path("runs/tables"), help="run folders, shared cache, merged table")
    parser.add_argument("--jobs", type=int, default=1, help="sittings run at a time (one shared cache)")
    parser.add_argument("--quick", action="store_true", help="CI-sized budget for every command (numbers mean nothing)")
    parser.add_argument("--only", default="", help="comma-separated results files (or stems) to run and merge")
    parser.add_argument("--into", type=Path, action="append", default=[],
                        help="rewrite the marked model table of this markdown file (README.md, docs/results/protocol.md)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands and the recorded costs only")
    args = parser.parse_args(argv)
    sittings = read_manifest(args.manifest)
    if args.only:
        wanted = {Path(name).stem for name in args.only.split(",") if name}
        unknown = wanted - {s.stem for s in sittings}
        if unknown:
            raise SystemExit(f"--only: not in {args.manifest}: {sorted(unknown)}")
        sittings = [s for s in sittings if s.stem in wanted]
    if args.dry_run:
        wall = cpu = 0.0
        for sitting in sittings:
            cost = recorded_cost(sitting)
            wall, cpu = wall + (cost[0] if cost else 0.0), cpu + (cost[1] if cost else 0.0)
            recorded = f"recorded {cost[0]:.2f} h wall, {cost[1]:.2f} CPU-h" if cost else "no recorded run"
            print(f"# {sitting.results} ({sitting.sitting} sitting; {recorded})")
            print(shlex.join(["spikefm", *sitting.command(args.out, args.quick)[3:]]))
        print(f"# {len(sittings)} sittings; recorded {wall:.1f} h wall (summed over processes), {cpu:.1f} CPU-h")
        return
    json_path, md_path = regenerate(sittings, args.out, jobs=args.jobs, quick=args.quick, into=args.into)
    print(f"merged table written to {json_path} and {md_path}")


if __name__ == "__main__":
    main(sys.argv[1:])
