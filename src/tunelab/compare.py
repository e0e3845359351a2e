"""Train several strategies (and base models) on one split and put them side by side."""

from __future__ import annotations

import copy
import gc
import time
from dataclasses import dataclass
from typing import Any

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


def compare(config: RunConfig, store: RunStore, strategies: list[str], models: list[str] | None = None) -> Comparison:
    """Every (model, strategy) pair on the same split; writes compare.json and compare.md."""
    config = copy.deepcopy(config).validate()
    for strategy in strategies:
        if strategy not in STRATEGIES:
            raise UserError(f"--strategies: unknown strategy {strategy!r}{did_you_mean(strategy, STRATEGIES)}")
    data = load_data(config.data, config.seed)  # one split, shared by every run
    for message in data.warnings:
        console.warn(message)
    rows = []
    output_dir, config.output_dir = config.output_dir, None
    for model in models or [config.model.name_or_path]:
        for strategy in strategies:
            run_config = copy.deepcopy(config)
            run_config.strategy, run_config.model.name_or_path = strategy, model
            run = train(run_config, store, data)
            rows.append(_row(run))
            gc.collect()  # let the previous model's memory go before the next one is measured
    with store.writing(output_dir, "compare") as draft:
        table = markdown_table(rows)
        summary = {"kind": "comparison", "id": draft.id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                   "data": {"train": config.data.train, "validation": config.data.validation,
                            "train_rows": len(data.train), "validation_rows": len(data.validation)},
                   "rows": rows}
        write_json(draft.path / "compare.json", summary)
        (draft.path / "compare.md").write_text(
            f"# tunelab compare\n\nTrain: {config.data.train} ({len(data.train)} rows); validation:"
            f" {config.data.validation or 'held out from train'} ({len(data.validation)} rows).\n\n{table}\n")
        write_json(draft.path / MANIFEST, {k: v for k, v in summary.items() if k != "rows"} | {"runs": [r["run"] for r in rows]})
    result = Comparison(store.get(draft.id), rows)
    console.result("\n" + table + f"\n\nwritten to {result.run.path}/compare.md and compare.json")
    return result


def _row(run: Run) -> dict[str, Any]:
    manifest = run.manifest
    scores = manifest["metrics"]["validation"]
    return {
        "run": run.id, "strategy": manifest["strategy"], "model": manifest["base_model"]["given"],
        "accuracy": round(scores["accuracy"], 4), "macro_f1": round(scores["macro_f1"], 4),
        "train_seconds": manifest["train_seconds"], "trainable_params": manifest["trainable_params"],
        "total_params": manifest["total_params"], "artifact_bytes": manifest["artifact_bytes"],
        "artifact_mb": round(manifest["artifact_bytes"] / 2**20, 3),
        "peak_rss_mb": manifest["peak_rss_mb"], "peak_gpu_mb": manifest.get("peak_gpu_mb"),
    }


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a Markdown table (also readable as plain text)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in rows:
        row = {**row, "artifact": human_size(row["artifact_bytes"])}
        cells = [f"{row[c]:,}" if isinstance(row[c], int) else str(row[c]) for c in COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def human_size(size: int) -> str:
    """1234567 -> '1.2 MB'."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")
