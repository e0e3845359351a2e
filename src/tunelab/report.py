"""`tunelab report`: one self-contained HTML file per run or set of runs, figures embedded as PNG.

What people judge a fine-tuning run by: its learning curves (with the kept checkpoint marked), the
task's own breakdown (confusions, per-entity F1, EM/F1 by answer length, predicted against gold),
calibration, and for several runs the score against training time, trainable parameters and size.
Every number comes from the run's metrics.json and run.json; nothing is recomputed.
"""

from __future__ import annotations

import base64
import io
import json
import os
import time
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.registry import Run, RunStore

SCORE_DIGITS = 4


def expand(store: RunStore, references: list[str]) -> list[Run]:
    """Runs by id or folder; a comparison stands for the runs it trained."""
    runs: list[Run] = []
    for reference in references:
        run = store.get(reference)
        if run.kind == "comparison":
            runs.extend(store.get(r) for r in run.manifest["runs"])
        else:
            runs.append(run)
    if not runs:
        raise UserError("report: no runs given")
    return list({r.id: r for r in runs}.values())


def _metrics(run: Run) -> dict[str, Any]:
    path = run.path / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def headline(run: Run) -> tuple[str, float | None]:
    """The run's headline metric name and validation value."""
    metric = run.manifest.get("metric", "accuracy")
    return metric, run.manifest.get("metrics", {}).get("validation", {}).get(metric)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def learning_curves(history: list[dict[str, Any]], metric: str, best_epoch: float | None) -> str | None:
    """Training loss per step, validation metric and loss per evaluation, learning rate; the kept epoch marked."""
    train = [(h["step"], h["loss"]) for h in history if "loss" in h and "step" in h]
    evaluations = [h for h in history if "eval_loss" in h]
    rates = [(h["step"], h["learning_rate"]) for h in history if "learning_rate" in h and "step" in h]
    if not train and not evaluations:
        return None
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    if train:
        axes[0].plot(*zip(*train, strict=True), label="training loss", color="#1f77b4")
    if evaluations:
        axes[0].plot([h["step"] for h in evaluations], [h["eval_loss"] for h in evaluations], "o-", label="validation loss",
                     color="#ff7f0e")
        key = f"eval_{metric}"
        points = [(h["epoch"], h[key]) for h in evaluations if key in h]
        if points:
            axes[1].plot(*zip(*points, strict=True), "o-", color="#2ca02c")
            best = [p for p in points if best_epoch is not None and abs(p[0] - best_epoch) < 1e-6]
            if best:
                axes[1].plot(*best[0], marker="*", markersize=16, color="#d62728", label=f"kept (epoch {best_epoch:g})")
                axes[1].legend()
    axes[0].set(xlabel="step", ylabel="loss", title="loss")
    axes[0].legend()
    axes[1].set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    if rates:
        axes[2].plot(*zip(*rates, strict=True), color="#9467bd")
    axes[2].set(xlabel="step", ylabel="learning rate", title="learning-rate schedule")
    figure.tight_layout()
    return _png(figure)


def confusion_figure(matrix: list[list[int]], labels: list[str]) -> str:
    """Gold rows against predicted columns, counts written in the cells."""
    import numpy as np

    plt = _pyplot()
    size = max(3.5, 0.5 * len(labels) + 2)
    figure, axis = plt.subplots(figsize=(size, size * 0.85))
    values = np.array(matrix)
    axis.imshow(values, cmap="Blues")
    ticks = range(len(labels))
    axis.set_xticks(ticks, labels, rotation=45, ha="right")
    axis.set_yticks(ticks, labels)
    axis.set(xlabel="predicted", ylabel="gold", title="confusion matrix")
    if len(labels) <= 20:
        for (i, j), count in np.ndenumerate(values):
            axis.text(j, i, str(count), ha="center", va="center", color="white" if count > values.max() / 2 else "black")
    return _png(figure)


def bars_figure(scores: dict[str, dict[str, Any]], keys: tuple[str, ...], title: str) -> str:
    """Grouped bars per class / entity type / bucket."""
    import numpy as np

    plt = _pyplot()
    names = list(scores)
    figure, axis = plt.subplots(figsize=(max(5, 0.9 * len(names) + 2), 3.4))
    width = 0.8 / len(keys)
    for k, key in enumerate(keys):
        axis.bar(np.arange(len(names)) + k * width, [scores[n].get(key, 0) for n in names], width, label=key)
    axis.set_xticks(np.arange(len(names)) + width * (len(keys) - 1) / 2, names, rotation=30, ha="right")
    axis.set(title=title)
    axis.legend()
    return _png(figure)


def calibration_figure(calibration: dict[str, Any]) -> str:
    """Reliability diagram: accuracy per confidence bin against the diagonal of perfect calibration."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.2, 4))
    bins = calibration["bins"]
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfectly calibrated")
    axis.bar([(b["low"] + b["high"]) / 2 for b in bins], [b["accuracy"] for b in bins], width=0.09, alpha=0.8, label="accuracy")
    axis.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o", color="#d62728", label="mean confidence")
    axis.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy", title=f"reliability (ECE {calibration['ece']:.3f})")
    axis.legend(loc="upper left", fontsize=8)
    return _png(figure)


def scatter_figure(scatter: dict[str, list[float]], title: str) -> str:
    """Predicted against gold."""
    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(4.2, 4))
    axis.scatter(scatter["gold"], scatter["predicted"], s=6, alpha=0.4)
    axis.set(xlabel="gold", ylabel="predicted", title=title)
    return _png(figure)


def tradeoff_figure(runs: list[Run]) -> str:
    """Score against training time, trainable parameters and artifact size, one point per run."""
    plt = _pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    metric = headline(runs[0])[0]
    for axis, key, label in zip(axes, ("train_seconds", "trainable_params", "artifact_bytes"),
                                ("training time (s)", "trainable parameters", "artifact size (bytes)"), strict=True):
        for run in runs:
            value, score = run.manifest.get(key), headline(run)[1]
            if value is None or score is None:
                continue
            axis.scatter(max(value, 1), score, s=40)
            axis.annotate(f"{run.manifest.get('strategy')} ({run.id[-4:]})", (max(value, 1), score), fontsize=8,
                          xytext=(4, 4), textcoords="offset points")
        axis.set_xscale("log")
        axis.set(xlabel=label, ylabel=f"validation {metric}")
    figure.suptitle("score against cost")
    figure.tight_layout()
    return _png(figure)


def _table(name: str, scores: dict[str, dict[str, Any]], keys: tuple[str, ...]) -> dict[str, Any]:
    rows = [[item, *[_cell(scores[item].get(k)) for k in keys]] for item in scores]
    return {"name": name, "columns": ["", *keys], "rows": rows}


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.{SCORE_DIGITS}f}"
    return "-" if value is None else f"{value}"


def task_parts(run: Run, metrics: dict[str, Any]) -> tuple[list[dict[str, str]], list[dict[str, Any]]]:
    """The task's figures and tables for one run, from its validation metrics."""
    figures, tables = [], []
    scores = metrics.get("validation", {})
    if "confusion_matrix" in scores:
        figures.append({"name": "confusion-matrix", "caption": "validation confusion matrix",
                        "png": confusion_figure(scores["confusion_matrix"], run.manifest["labels"])})
    if "per_class" in scores:
        figures.append({"name": "per-class", "caption": "per-class precision, recall and F1 (validation)",
                        "png": bars_figure(scores["per_class"], ("precision", "recall", "f1"), "per class")})
        tables.append(_table("per-class", scores["per_class"], ("precision", "recall", "f1", "support")))
    if "calibration" in scores:
        figures.append({"name": "calibration", "caption": "reliability diagram (validation)",
                        "png": calibration_figure(scores["calibration"])})
    if "per_type" in scores:
        figures.append({"name": "per-entity-type", "caption": "entity-level F1 per type (validation, seqeval)",
                        "png": bars_figure(scores["per_type"], ("precision", "recall", "f1"), "per entity type")})
        tables.append(_table("per-entity-type", scores["per_type"], ("precision", "recall", "f1", "support")))
    if "by_answer_length" in scores:
        figures.append({"name": "by-answer-length", "caption": "EM and F1 by gold answer length (validation)",
                        "png": bars_figure(scores["by_answer_length"], ("exact_match", "f1"), "by answer length")})
        tables.append(_table("by-answer-length", scores["by_answer_length"], ("exact_match", "f1", "n")))
    if "scatter" in scores:
        figures.append({"name": "predicted-vs-gold", "caption": "predicted against gold (validation)",
                        "png": scatter_figure(scores["scatter"], "predicted vs gold")})
    return figures, tables


def run_section(run: Run) -> dict[str, Any]:
    """Everything the template shows for one run."""
    metrics, manifest = _metrics(run), run.manifest
    metric = headline(run)[0]
    best = (manifest.get("strategy_info") or {}).get("best_checkpoint_epoch")
    figures, tables = task_parts(run, metrics)
    curves = learning_curves(metrics.get("history", []), manifest.get("metric", "macro_f1"), best)  # classification picks on macro-F1
    if curves:
        figures.insert(0, {"name": "learning-curves", "caption": "loss, validation score and learning rate"
                           + (f"; star: the epoch kept ({best:g})" if best is not None else ""), "png": curves})
    config = run.path / "config.yaml"
    return {
        "run": run, "task": manifest.get("task_kind", manifest.get("task", "classification")), "metric": metric,
        "scores": {split: {k: _cell(v) for k, v in values.items()} for split, values in manifest.get("metrics", {}).items()},
        "figures": figures, "tables": tables, "curves_note": None if curves else
        "no training curve: this strategy fits no network (a scikit-learn head, or a zero-shot baseline)",
        "config": config.read_text() if config.is_file() else "", "data": json.dumps(manifest.get("data", {}), indent=2),
        "advice": manifest.get("advice", []), "warnings": (manifest.get("data") or {}).get("warnings", []),
    }


def tradeoff_groups(runs: list[Run]) -> list[dict[str, str]]:
    """One score-against-cost figure per (task, metric) shared by at least two runs: scores of different tasks do not compare."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        key = (run.manifest.get("task_kind", run.manifest.get("task", "classification")), headline(run)[0])
        groups.setdefault(key, []).append(run)
    return [{"name": f"{task} ({metric})", "png": tradeoff_figure(members)} for (task, metric), members in groups.items()
            if len(members) > 1]


def render(runs: list[Run], title: str = "tunelab report", dashboard: dict[str, Any] | None = None) -> str:
    """The report as one HTML string (no external resources); `dashboard` adds the served page's navigation and try-it box."""
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(loader=PackageLoader("tunelab", "templates"), autoescape=select_autoescape(["html"]))
    summary = [{"id": r.id, "task": r.manifest.get("task_kind", r.manifest.get("task", "classification")),
                "strategy": r.manifest.get("strategy"), "model": r.manifest.get("base_model", {}).get("given"),
                "metric": headline(r)[0], "score": _cell(headline(r)[1]), "seconds": f"{r.manifest.get('train_seconds', 0):.1f}",
                "params": f"{r.manifest.get('trainable_params', 0):,}", "size": _size(r.manifest.get("artifact_bytes"))} for r in runs]
    return environment.get_template("report.html").render(
        title=title, created=time.strftime("%Y-%m-%d %H:%M:%S"), summary=summary,
        tradeoffs=tradeoff_groups(runs), sections=[run_section(r) for r in runs], dashboard=dashboard)


def _size(value: int | None) -> str:
    from tunelab.compare import human_size

    return human_size(value) if value is not None else "-"


def write_report(runs: list[Run], output: Path, title: str = "tunelab report") -> Path:
    """Write the report atomically; returns its path."""
    html = render(runs, title)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.name}.tmp-{os.getpid()}")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, output)
    return output
