"""The protocol's results JSON as one markdown table layout (synthetic suite, a user's file, a recipe alike), and
several results JSONs (rows from separate sittings) as one table (:func:`merge`, :func:`merged_markdown`)."""

from __future__ import annotations

from typing import Any, Sequence

__all__ = ["markdown", "merge", "merged_markdown", "model_table", "embed_table", "TABLE_START", "TABLE_END"]

#: A document's generated table sits between these two lines (:func:`embed_table` rewrites it).
TABLE_START, TABLE_END = "<!-- merged table", "<!-- end merged table -->"


def _config(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def markdown(result: dict[str, Any]) -> str:
    """Rows with score and 95% interval, then model - baseline differences; a model's score is bold only where it
    beats every baseline it is compared with."""
    env, budget = result["environment"], result["budget"]
    # A model row is bold only when it beats every baseline it is compared with (one loss or tie: not bold).
    compared = {(c["model"], c["metric"]) for c in result["comparisons"]}
    beaten = compared - {(c["model"], c["metric"]) for c in result["comparisons"] if not c["beats"]}
    lines = [
        f"# Protocol results: {result['suite']}", "",
        f"Commit {env['commit']}"
        + (f" (the tree was at {env['commit_at_end']} when it ended)" if env.get("commit_at_end") else "")
        + f"; {env['cpu']} ({env['cores']} cores, {env['torch_threads']} torch thread(s))"
        + (f", GPU {env['gpu']}" if env.get("gpu") else "") + f"; torch {env['torch']}. "
        f"Wall time {result['wall_seconds'] / 60:.1f} min, {result['cpu_hours']:.3f} CPU-hours.", "",
        f"Budget (every candidate with knobs alike): {budget['trials']} search trials on validation "
        f"({budget['pruner']} pruner on validation loss), models up to {budget['max_steps']} steps, "
        f"{budget['seeds']} training seeds of the chosen config (deterministic baselines: one), "
        f"{budget['bootstrap']} bootstrap replicates.", "",
    ]
    lines += [f"- {note}" for note in result.get("notes", [])] + ([""] if result.get("notes") else [])
    lines += ["| row | metric | information | score (95% interval) | seeds | chosen on val | CPU-h |",
              "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        value = f"{row['score']:.3f} [{row['interval'][0]:.3f}, {row['interval'][1]:.3f}]"
        if (row["name"], row["metric"]) in beaten:
            value = f"**{value}**"
        lines.append(f"| {row['name']} | {row['metric']} | {row['information']} | {value} | "
                     f"{len(row['seeds'])} | {_config(row['chosen_config'])} | {row['cpu_hours']:.3f} |")
    if result["comparisons"]:
        lines += ["", "| model - baseline | metric | baseline reads | difference (95% interval) | beats |",
                  "|---|---|---|---|---|"]
        for c in result["comparisons"]:
            lines.append(f"| {c['model']} - {c['baseline']} | {c['metric']} | {c['baseline_information']} | "
                         f"{c['difference']:+.3f} [{c['interval'][0]:+.3f}, {c['interval'][1]:+.3f}] | "
                         f"{'yes' if c['beats'] else 'no'} |")
    if result.get("ablations"):
        lines += ["", "| model - ablation | metric | difference (95% interval) | better |", "|---|---|---|---|"]
        for a in result["ablations"]:
            lo, hi = a["interval"]
            better = "model" if lo > 0 else "ablation" if hi < 0 else "level"
            lines.append(f"| {a['model']} - {a['ablation']} | {a['metric']} | {a['difference']:+.3f} "
                         f"[{lo:+.3f}, {hi:+.3f}] | {better} |")
    if result.get("pairs"):
        lines += ["", "| model - other model (paired) | metric | difference (95% interval) | better |", "|---|---|---|---|"]
        for p in result["pairs"]:
            lo, hi = p["interval"]
            better = p["model"] if lo > 0 else p["versus"] if hi < 0 else "level"
            lines.append(f"| {p['model']} - {p['versus']} | {p['metric']} | {p['difference']:+.3f} "
                         f"[{lo:+.3f}, {hi:+.3f}] | {better} |")
    data = result["rows"][0]["data"] if result["rows"] else []
    lines += ["", "Scored on: " + "; ".join(f"{d['name']} {d['split_sizes']}" for d in data) + "."]
    if result["rows"]:
        sel = result["rows"][0]["selected_on"]
        lines += [f"Selected on: {sel['data']} (train / val only; its test split is never opened)."]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- several runs, one table
def _data_label(row: dict[str, Any]) -> str:
    """``synth-1001/1002/1003``: the datasets a row was scored on, sharing their name's prefix."""
    names = [d["name"] for d in row["data"]]
    prefixes = {n.rpartition("-")[0] for n in names}
    if len(prefixes) == 1 and all("-" in n for n in names):
        return prefixes.pop() + "-" + "/".join(n.rpartition("-")[2] for n in names)
    return "/".join(names)


def _interval(lo_hi: Sequence[float], signed: bool = False) -> str:
    fmt = "{:+.3f}" if signed else "{:.3f}"
    return "[" + ", ".join(fmt.format(v) for v in lo_hi) + "]"


def _source_summary(result: dict[str, Any], source: str) -> dict[str, Any]:
    env = result["environment"]
    return {"source": source, "suite": result["suite"], "budget": result["budget"], "commit": env["commit"],
            "hardware": f"{env['cpu']} ({env['cores']} cores, {env['torch_threads']} torch thread(s))"
                        + (f", GPU {env['gpu']}" if env.get("gpu") else ""),
            "torch": env["torch"], "wall_seconds": result["wall_seconds"], "cpu_hours": result["cpu_hours"],
            "load": env.get("load")}


def _model_entry(row: dict[str, Any], result: dict[str, Any], source: str) -> dict[str, Any]:
    """A model row with its best baseline: the highest-scoring baseline it was compared with in the same run."""
    scores = {(r["name"], r["metric"]): r for r in result["rows"]}
    compared = [c for c in result["comparisons"] if c["model"] == row["name"] and c["metric"] == row["metric"]]
    entry = {"name": row["name"], "metric": row["metric"], "information": row["information"],
             "data": _data_label(row), "score": row["score"], "interval": row["interval"],
             "seeds": row["seeds"], "chosen_config": row["chosen_config"], "cpu_hours": row["cpu_hours"],
             "source": source, "best_baseline": None}
    if compared:
        best = max(compared, key=lambda c: scores[c["baseline"], c["metric"]]["score"])
        base = scores[best["baseline"], best["metric"]]
        entry["best_baseline"] = {"name": base["name"], "information": base["information"], "score": base["score"],
                                  "interval": base["interval"], "difference": best["difference"],
                                  "difference_interval": best["interval"], "beats": best["beats"]}
    return entry


def merge(results: Sequence[dict[str, Any]], sources: Sequence[str] | None = None) -> dict[str, Any]:
    """One table's worth of rows from several protocol results (e.g. rows computed in separate sittings).

    Each model row keeps the comparisons of its own run (differences are paired within a run). Baseline rows
    scored on the same data with the same chosen configuration and score by several runs appear once.

    Raises:
        ValueError: one model appears twice on the same data (say which result to keep), or the number of
            sources does not match the results.
    """
    sources = list(sources) if sources is not None else [f"result {i + 1}" for i in range(len(results))]
    if len(sources) != len(results):
        raise ValueError(f"merge: {len(results)} results but {len(sources)} source names")
    models: dict[tuple[str, str, str], dict[str, Any]] = {}
    baselines: dict[tuple, dict[str, Any]] = {}
    for result, source in zip(results, sources):
        for row in result["rows"]:
            data = _data_label(row)
            if row["role"] == "model":
                key = (row["name"], row["metric"], data)
                if key in models:
                    raise ValueError(f"merge: {row['name']} ({row['metric']}, {data}) is in both "
                                     f"{models[key]['source']} and {source}; keep one")
                models[key] = _model_entry(row, result, source)
                continue
            key = (row["name"], row["metric"], data, round(row["score"], 6), repr(row["chosen_config"]))
            baselines.setdefault(key, {"name": row["name"], "metric": row["metric"], "data": data,
                                       "information": row["information"], "score": row["score"],
                                       "interval": row["interval"], "chosen_config": row["chosen_config"],
                                       "sources": []})["sources"].append(source)
    return {"sources": [_source_summary(r, s) for r, s in zip(results, sources)],
            "models": list(models.values()), "baselines": list(baselines.values())}


def model_table(merged: dict[str, Any]) -> str:
    """The models' table of :func:`merged_markdown` alone (what the README shows)."""
    return merged_markdown(merged).split("\n\n", 1)[0] + "\n"


def embed_table(document: str, table: str) -> str:
    """``document`` with the lines between its :data:`TABLE_START` line and :data:`TABLE_END` replaced by ``table``.

    Raises:
        ValueError: the document lacks the markers.
    """
    lines = document.splitlines(keepends=True)
    starts = [i for i, line in enumerate(lines) if line.startswith(TABLE_START)]
    ends = [i for i, line in enumerate(lines) if line.startswith(TABLE_END)]
    if len(starts) != 1 or len(ends) != 1 or ends[0] < starts[0]:
        raise ValueError(f"the document needs one '{TABLE_START} ... -->' line, then one '{TABLE_END}' line")
    return "".join(lines[: starts[0] + 1]) + table + "".join(lines[ends[0]:])


def merged_markdown(merged: dict[str, Any]) -> str:
    """The merged rows as two tables: models against their best baseline, then every baseline."""
    lines = ["| model | data | metric | information | score (95% interval) | best baseline (reads) | baseline score | "
             "model - baseline (95% interval) |", "|---|---|---|---|---|---|---|---|"]
    for m in merged["models"]:
        value, best = f"{m['score']:.3f} {_interval(m['interval'])}", m["best_baseline"]
        if best is None:
            lines.append(f"| {m['name']} | {m['data']} | {m['metric']} | {m['information']} | {value} | - | - | - |")
            continue
        diff = f"{best['difference']:+.3f} {_interval(best['difference_interval'], signed=True)}"
        if best["beats"]:  # the difference interval excludes zero, in the model's favour
            value, diff = f"**{value}**", f"**{diff}**"
        lines.append(f"| {m['name']} | {m['data']} | {m['metric']} | {m['information']} | {value} | "
                     f"{best['name']} ({best['information']}) | {best['score']:.3f} {_interval(best['interval'])} | "
                     f"{diff} |")
    lines += ["", "| baseline | data | metric | information | score (95% interval) | chosen on val |",
              "|---|---|---|---|---|---|"]
    for b in merged["baselines"]:
        lines.append(f"| {b['name']} | {b['data']} | {b['metric']} | {b['information']} | "
                     f"{b['score']:.3f} {_interval(b['interval'])} | {_config(b['chosen_config'])} |")
    budgets = {repr(s["budget"]) for s in merged["sources"]}
    lines += ["", "Sources" + (" (their budgets differ: compare rows of different sources with care)"
                               if len(budgets) > 1 else " (one budget)") + ":"]
    for s in merged["sources"]:
        budget = s["budget"]
        lines.append(f"- {s['source']}: {s['suite']}, {budget['trials']} trials / up to {budget['max_steps']} "
                     f"steps / {budget['seeds']} seeds / {budget['bootstrap']} bootstrap replicates; commit "
                     f"{s['commit']}; {s['hardware']}; torch {s['torch']}; {s['wall_seconds'] / 60:.1f} min wall, "
                     f"{s['cpu_hours']:.3f} CPU-hours" + (f"; load {s['load']}" if s.get("load") else "") + ".")
    return "\n".join(lines) + "\n"
