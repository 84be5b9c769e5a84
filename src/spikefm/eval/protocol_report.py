"""The protocol's results JSON as one markdown table layout (synthetic suite, a user's file, a recipe alike)."""

from __future__ import annotations

from typing import Any

__all__ = ["markdown"]


def _config(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.items())


def markdown(result: dict[str, Any]) -> str:
    """Rows with score and 95% interval, then model - baseline differences; bold only where the model beats."""
    env, budget = result["environment"], result["budget"]
    beaten = {(c["model"], c["metric"]) for c in result["comparisons"] if c["beats"]}
    lines = [
        f"# Protocol results: {result['suite']}", "",
        f"Commit {env['commit']}; {env['cpu']} ({env['cores']} cores, {env['torch_threads']} torch thread(s))"
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
    data = result["rows"][0]["data"] if result["rows"] else []
    lines += ["", "Scored on: " + "; ".join(f"{d['name']} {d['split_sizes']}" for d in data) + "."]
    if result["rows"]:
        sel = result["rows"][0]["selected_on"]
        lines += [f"Selected on: {sel['data']} (train / val only; its test split is never opened)."]
    return "\n".join(lines) + "\n"
