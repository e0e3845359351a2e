"""Train several strategies (and base models) on one split and put them side by side."""

from __future__ import annotations

import copy
import gc
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunelab import console
from tunelab.config import STRATEGIES, RunConfig
from tunelab.errors import UserError, did_you_mean
from tunelab.pipeline import train
from tunelab.registry import MANIFEST, Run, RunStore, write_json
from tunelab.tasks.classification import load_data

COLUMNS = ("strategy", "model", "accuracy", "macro_f1", "train_seconds", "trainable_params", "artifact", "peak_rss_mb")


@dataclass
class Comparison:
    """The compare table and where it was written."""

    run: Run
    rows: list[dict[str, Any]]


def parse_list(text: str, what: str, choices: tuple[str, ...] | None = None) -> list[str]:
    """'a,b' -> ['a', 'b'], checking each against `choices` when given."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise UserError(f"--{what}: expected a comma-separated list")
    for item in items:
        if choices is not None and item not in choices:
            raise UserError(f"--{what}: unknown value {item!r}{did_you_mean(item, choices)}; expected some of {', '.join(choices)}")
    return items


def compare(config: RunConfig, store: RunStore, strategies: list[str], models: list[str] | None = None,
            seeds: int = 1) -> Comparison:
    """Every (model, strategy) pair, `seeds` times each, on the same split; writes compare.json and compare.md."""
    config = copy.deepcopy(config).validate()
    for strategy in strategies:
        if strategy not in (*STRATEGIES, "auto"):
            raise UserError(f"--strategies: unknown strategy {strategy!r}{did_you_mean(strategy, STRATEGIES)}")
    if config.task_kind == "classification":
        data = load_data(config.data, config.seed)  # one split, shared by every run
    else:
        from tunelab.tasks import task_for

        data = task_for(config).load_data()
    for message in data.warnings:
        console.warn(message)
    rows = []
    output_dir, config.output_dir = config.output_dir, None
    if seeds < 1:
        raise UserError(f"--seeds: expected at least 1, got {seeds}")
    for model in models or [config.model.name_or_path]:
        for strategy in strategies:
            for offset in range(seeds):  # the split stays fixed: only training randomness varies
                run_config = copy.deepcopy(config)
                run_config.strategy, run_config.model.name_or_path = strategy, model
                run_config.seed = config.seed + offset
                run = train(run_config, store, data)
                rows.append(_row(run))
                gc.collect()  # let the previous model's memory go before the next one is measured
    groups = seed_groups(rows) if seeds > 1 else []
    with store.writing(output_dir, "compare") as draft:
        table = markdown_table(rows, columns_for(rows)) + (f"\n\nOver {seeds} seeds:\n\n" + seeds_table(groups) if groups else "")
        summary = {"kind": "comparison", "id": draft.id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "data": {"train": config.data.train, "validation": config.data.validation,
                            "train_rows": len(data.train), "validation_rows": len(data.validation)},
                   "rows": rows, "seed_groups": groups}
        write_json(draft.path / "compare.json", summary)
        (draft.path / "compare.md").write_text(
            f"# tunelab compare\n\nTrain: {config.data.train} ({len(data.train)} rows); validation:"
            f" {config.data.validation or 'held out from train'} ({len(data.validation)} rows).\n\n{table}\n")
        write_json(draft.path / MANIFEST, {k: v for k, v in summary.items() if k != "rows"} | {"runs": [r["run"] for r in rows]})
        from tunelab.report import write_report

        write_report([store.get(r["run"]) for r in rows], draft.path / "report.html", f"tunelab compare {draft.id}")
    for group in groups:
        for run_id in group["degenerate"]:
            console.warn(f"degenerate run: {run_id} scored far below its {group['strategy']} siblings; check its learning curve")
    result = Comparison(store.get(draft.id), rows)
    console.result("\n" + table + f"\n\nwritten to {result.run.path}/compare.md, compare.json and report.html")
    return result


def score_names(rows: list[dict[str, Any]]) -> list[str]:
    """The metric columns of the rows: accuracy and macro-F1 for classification, else the task's headline metric."""
    return ["accuracy", "macro_f1"] if "macro_f1" in rows[0] else [rows[0]["metric"]]


def columns_for(rows: list[dict[str, Any]]) -> tuple[str, ...]:
    """Table columns for these rows."""
    return ("strategy", "model", *score_names(rows), "train_seconds", "trainable_params", "artifact", "peak_rss_mb")


def seed_groups(rows: list[dict[str, Any]], gap: float = 0.10) -> list[dict[str, Any]]:
    """Mean and std per (model, strategy); a run more than `gap` below its group's median (last metric) is degenerate."""
    names = score_names(rows)
    groups = []
    for key in dict.fromkeys((r["model"], r["strategy"]) for r in rows):
        members = [r for r in rows if (r["model"], r["strategy"]) == key]
        group: dict[str, Any] = {"model": key[0], "strategy": key[1], "seeds": [r["seed"] for r in members], "metrics": names}
        for name in names:
            values = np.array([r[name] for r in members])
            group[f"{name}_mean"], group[f"{name}_std"] = round(float(values.mean()), 4), round(float(values.std(ddof=1)), 4)
        judged = np.array([r[names[-1]] for r in members])
        scale = 100 if judged.max() > 1.0 else 1  # QA's EM/F1 are percentages
        group["degenerate"] = [r["run"] for r in members if r[names[-1]] < np.median(judged) - gap * scale or r["collapsed"]]
        groups.append(group)
    return groups


def seeds_table(groups: list[dict[str, Any]]) -> str:
    """Mean ± std per setup as Markdown."""
    names = groups[0]["metrics"]
    lines = ["| strategy | model | " + " | ".join(names) + " | seeds | degenerate |", "|---|---|" + "---|" * len(names) + "---|---|"]
    for g in groups:
        cells = " | ".join(f"{g[f'{n}_mean']:.4f} ± {g[f'{n}_std']:.4f}" for n in names)
        lines.append(f"| {g['strategy']} | {g['model']} | {cells} | {len(g['seeds'])} | {', '.join(g['degenerate']) or '-'} |")
    return "\n".join(lines)


def _row(run: Run) -> dict[str, Any]:
    manifest = run.manifest
    scores = manifest["metrics"]["validation"]
    return {
        "run": run.id, "strategy": manifest["strategy"], "model": manifest["base_model"]["given"], "seed": manifest["seed"],
        "collapsed": any(f["code"] == "collapse" for f in manifest.get("advice", [])),
        **({"accuracy": round(scores["accuracy"], 4), "macro_f1": round(scores["macro_f1"], 4)} if "metric" not in manifest
           else {"metric": manifest["metric"], manifest["metric"]: round(scores[manifest["metric"]], 4)}),
        "train_seconds": manifest["train_seconds"], "trainable_params": manifest["trainable_params"],
        "total_params": manifest["total_params"], "artifact_bytes": manifest["artifact_bytes"],
        "artifact_mb": round(manifest["artifact_bytes"] / 2**20, 3),
        "peak_rss_mb": manifest["peak_rss_mb"], "peak_gpu_mb": manifest.get("peak_gpu_mb"),
    }


def markdown_table(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> str:
    """The rows as a Markdown table (also readable as plain text)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for row in rows:
        row = {**row, "artifact": human_size(row["artifact_bytes"])}
        cells = [f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in columns]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def human_size(size: int) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
