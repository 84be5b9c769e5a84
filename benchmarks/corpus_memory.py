"""Peak memory of streaming training windows from a corpus, as the corpus grows.

Opens the first ``--sessions`` recordings of a corpus folder (``spikefm synth OUT --groups 8``)
with :class:`spikefm.data.corpus.Corpus` (lazy) or reads them all into memory (``--eager``), then
streams ``--batches`` batches of POYO-tokenized trial windows drawn at random from every session
(the training data path: TrialWindowSampler -> WindowDataset -> collate) and prints one JSON line:
peak RSS (``ru_maxrss``), RSS after opening, open and stream wall times. Run each size in a fresh
process (peak RSS never goes down):

    spikefm synth runs/corpus256 --sessions 256 --groups 8 --trials 40 --units 20-80
    for n in 16 256; do python benchmarks/corpus_memory.py runs/corpus256 --sessions $n; done
    for n in 16 256; do python benchmarks/corpus_memory.py runs/corpus256 --sessions $n --eager; done
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder heads sys.path, where benchmarks/tokenize.py would shadow
# the standard library's ``tokenize``: drop the folder first.
if sys.path and os.path.abspath(sys.path[0] or ".") == os.path.dirname(os.path.abspath(__file__)):
    sys.path.pop(0)

import argparse
import json
import resource
import time
from pathlib import Path


def _rss_mib() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--batches", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--eager", action="store_true", help="read every session into memory instead")
    args = parser.parse_args()

    import torch
    from torch.utils.data import DataLoader

    from spikefm.data.corpus import Corpus
    from spikefm.data.dataset import WindowDataset
    from spikefm.data.sampling import TrialWindowSampler
    from spikefm.data.store import read_recording
    from spikefm.models.registry import build_config, get_spec
    from spikefm.tokenize.base import collate

    torch.set_num_threads(1)
    start_rss = _rss_mib()
    paths = sorted(args.corpus.glob("*.h5"))[: args.sessions]
    if len(paths) < args.sessions:
        raise SystemExit(f"{args.corpus} has {len(paths)} sessions, fewer than --sessions {args.sessions}")
    t0 = time.perf_counter()
    recordings = [read_recording(p) for p in paths] if args.eager else Corpus(paths).recordings
    open_seconds = time.perf_counter() - t0
    open_rss = _rss_mib()
    tokenizer = get_spec("poyo").make_tokenizer(build_config("poyo", "tiny"))
    sampler = TrialWindowSampler(recordings, align="start", before=0.0, after=1.0, split="train", shuffle=True, seed=0)
    loader = DataLoader(WindowDataset(recordings, tokenizer), sampler=sampler, batch_size=args.batch_size,
                        collate_fn=collate)
    t0, tokens, seen = time.perf_counter(), 0, 0
    for batch in loader:
        tokens += int(batch.mask.sum())
        seen += 1
        if seen >= args.batches:
            break
    stream_seconds = time.perf_counter() - t0
    print(json.dumps({
        "sessions": args.sessions, "mode": "eager" if args.eager else "lazy",
        "spikes": int(sum(r.n_spikes for r in recordings)), "batches": seen, "tokens": tokens,
        "rss_start_mib": round(start_rss, 1), "rss_after_open_mib": round(open_rss, 1),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "open_s": round(open_seconds, 2), "stream_s": round(stream_seconds, 2),
    }))


if __name__ == "__main__":
    main()
