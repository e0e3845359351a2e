"""The user-facing operations: train a run, evaluate it, predict with it."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from tunelab import __version__, advice, console, distributed
from tunelab.config import DataConfig, RunConfig
from tunelab.errors import UserError
from tunelab.hardware import resolve_precision
from tunelab.inference import load_predictor, load_run_predictor
from tunelab.models import encoder_parameter_count, fingerprint, load_model_config, load_tokenizer, resolve_model
from tunelab.registry import CHECKPOINTS, MANIFEST, Draft, Run, RunStore, folder_size, write_json
from tunelab.resources import Measure
from tunelab.strategies import DEFAULT_LEARNING_RATE, FitContext, fit_function
from tunelab.tasks.classification import ClassificationData, Examples, compute_metrics, load_data, prediction_records, read_examples


def versions() -> dict[str, str]:
    """Library versions that decide whether a run reproduces."""
    import peft
    import torch
    import transformers

    return {"tunelab": __version__, "transformers": transformers.__version__, "peft": peft.__version__,
            "torch": torch.__version__, "python": platform.python_version()}


def file_digest(source: str | None) -> str | None:
    """sha256 of a local data file (None for hub sources and absent files)."""
    if not source or not Path(source).is_file():
        return None
    with open(source, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _data_summary(config: DataConfig, data: ClassificationData) -> dict[str, Any]:
    return {
        "train": {"source": config.train, "sha256": file_digest(config.train), "rows": len(data.train)},
        "validation": {"source": config.validation or f"{config.validation_size:.0%} of train, stratified",
                       "sha256": file_digest(config.validation), "rows": len(data.validation)},
        "test": {"source": config.test, "sha256": file_digest(config.test), "rows": len(data.test)} if data.test else None,
        "columns": {"text": config.text_column, "text_pair": config.text_pair_column, "label": config.label_column},
        "warnings": data.warnings,
    }


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (transformers.set_seed does all three)."""
    from transformers import set_seed

    set_seed(seed)


def train(config: RunConfig, store: RunStore, data: Any = None, resume: Path | None = None) -> Run:
    """Fit one strategy, save a self-contained run, score the saved run on validation (and test).

    `resume` is an interrupted run's hidden folder (RunStore.find_interrupted): training continues from
    its latest checkpoint. Under torchrun/accelerate every rank trains; rank 0 alone writes.
    """
    config = copy.deepcopy(config).validate()
    if config.task_kind != "classification":
        from tunelab.task_pipeline import train_task

        return train_task(config, store, data, resume)
    if config.strategy == "adapt":
        raise UserError("strategy 'adapt' is continued pre-training: run `tunelab adapt --corpus FILE` instead")
    _check_distributed(config)
    ref = resolve_model(config.model.name_or_path, config.model.revision, store.root)
    if data is None:
        data = load_data(config.data, config.seed)
        for message in data.warnings:
            console.warn(message)
    tokenizer = load_tokenizer(ref, config.model.tokenizer)
    planned = _choose_strategy(config, ref, tokenizer, data) if config.strategy == "auto" else {}
    if config.train.learning_rate is None:
        config.train.learning_rate = DEFAULT_LEARNING_RATE[config.strategy]
    config.train.precision = resolve_precision(config.train.precision)  # config.yaml records what ran
    findings = guardrails(config, ref, tokenizer, len(data.train))  # before any calibration is spent
    # Calibrating would need every rank in step; a distilled student has no model to calibrate until it exists.
    if "estimate" not in planned and distributed.world_size() == 1 and config.strategy != "distill":
        from tunelab.plan import estimate

        planned["estimate"] = estimate(config, ref, tokenizer, data, config.strategy)
    seed_everything(config.seed)
    if distributed.is_main():
        with store.writing(config.output_dir, config.strategy, resume) as draft:
            distributed.share((draft.id, str(draft.path), draft.resumed))
            _fit_and_record(config, ref, tokenizer, data, draft, store, planned, findings)
        run_id = draft.id
    else:  # the same fit in step with rank 0, writing nothing
        run_id, path, resumed = distributed.share(None)
        with tempfile.TemporaryDirectory(prefix="tunelab-") as scratch:
            fit_function(config.strategy)(FitContext(config, data, ref, tokenizer, Path(path), Path(scratch), store.root,
                                                     resume=resumed))
    distributed.barrier()  # rank 0 has renamed and indexed the run
    run = store.get(run_id)
    scores = run.manifest["metrics"]["validation"]
    console.result(f"[{run.id}] validation accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f}"
                   f" ({run.manifest['train_seconds']:.1f}s) -> {run.path}")
    return run


def _forgetting(config: RunConfig, ref: Any, tokenizer: Any, predictor: Any, data: ClassificationData) -> dict[str, Any]:
    if config.strategy == "features":
        return {"skipped": "the features strategy never changes the encoder, so it forgets nothing"}
    from tunelab.forgetting import probe_forgetting

    report = probe_forgetting(config, ref, tokenizer, predictor.model.base_model, data.train.texts)
    console.result(f"forgetting probe (general-English MLM loss): {report['mlm_loss_before']:.4f} base ->"
                   f" {report['mlm_loss_after']:.4f} fine-tuned ({report['change']:+.1%})")
    return report


def _check_distributed(config: RunConfig) -> None:
    distributed.init()
    if distributed.world_size() == 1:
        return
    if config.strategy not in distributed.DISTRIBUTED_STRATEGIES:
        raise UserError(f"strategy {config.strategy!r}: runs in one process; multi-process training (torchrun,"
                        f" accelerate launch) is for {' and '.join(distributed.DISTRIBUTED_STRATEGIES)}; choose one explicitly")
    if config.train.gradual_unfreezing:  # DDP fixes the set of trained parameters when it wraps the model
        raise UserError("config train.gradual_unfreezing: not available in multi-process training; use layerwise_lr_decay")
    if not distributed.is_main():
        console.set_silent()


def _fit_and_record(config: RunConfig, ref: Any, tokenizer: Any, data: ClassificationData, draft: Draft, store: RunStore,
                    planned: dict[str, Any], findings: list[advice.Finding]) -> None:
    """Rank 0's part: fit into the draft, then score the reloaded run and write its manifest and metrics."""
    (draft.path / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))  # what --resume reads
    verb = "resuming" if draft.resumed else "training"
    console.info(f"[{draft.id}] {verb} {config.strategy} on {ref.given}: {len(data.train)} train / {len(data.validation)}"
                 f" validation examples, {len(data.labels)} labels")
    with tempfile.TemporaryDirectory(prefix="tunelab-") as scratch, Measure() as cost:
        context = FitContext(config, data, ref, tokenizer, draft.path, Path(scratch), store.root, resume=draft.resumed)
        try:
            result = fit_function(config.strategy)(context)
        except KeyboardInterrupt:
            if (draft.path / CHECKPOINTS).is_dir():
                console.warn(f"[{draft.id}] interrupted; continue it with `tunelab train --resume {draft.id}`")
            raise
    manifest = {
        "kind": "run", "id": draft.id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "task": config.task, "strategy": config.strategy, "artifact": result.artifact, "seed": config.seed,
        "base_model": {"given": ref.given, "path": ref.path, "revision": ref.revision, "fingerprint": fingerprint(ref)},
        "labels": data.labels, "max_length": config.model.max_length, "pooling": config.model.pooling,
        "precision": config.train.precision,
        "columns": {"text": config.data.text_column, "text_pair": config.data.text_pair_column,
                    "label": config.data.label_column},
        "peft_method": config.peft.method if config.strategy == "lora" else None,
        "processes": distributed.world_size(), "resumed": draft.resumed,
        "versions": versions(),
    }
    predictor = load_predictor(draft.path, manifest, store.root)
    metrics = {"validation": _score(predictor, data.validation, data.labels, config.quiet)}
    if data.test is not None:
        metrics["test"] = _score(predictor, data.test, data.labels, config.quiet)
    if config.probe_forgetting:
        manifest["forgetting"] = _forgetting(config, ref, tokenizer, predictor, data)
    if planned.get("estimate"):
        planned["actual_over_estimate"] = {
            "seconds": round(cost.seconds / max(planned["estimate"]["seconds"], 1e-9), 3),
            "peak_rss_mb": round(cost.peak_rss_mb / planned["estimate"]["peak_rss_mb"], 3)}
    manifest.update({
        "metrics": {split: {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]} for split, m in metrics.items()},
        "train_seconds": round(cost.seconds, 2), "peak_rss_mb": round(cost.peak_rss_mb, 1),
        "peak_gpu_mb": round(cost.peak_gpu_mb, 1) if cost.peak_gpu_mb is not None else None,
        "trainable_params": result.trainable_params, "total_params": result.total_params,
        "strategy_info": result.info,
        "advice": advice.as_records(findings) + result.info.pop("advice", []),
        "plan": planned,
        "data": _data_summary(config.data, data),
    })
    write_json(draft.path / "metrics.json", {**metrics, "history": result.history})
    manifest["artifact_bytes"] = folder_size(draft.path / result.artifact)
    write_json(draft.path / MANIFEST, manifest)


def distill(config: RunConfig, store: RunStore) -> Run:
    """Distil a teacher run into a student run; data, seed and max length default to the teacher's own."""
    from tunelab.config import load_config

    config = copy.deepcopy(config)
    config.strategy = "distill"
    config.validate()
    teacher = store.get(config.distill.teacher)
    if not config.data.train:  # the teacher's split, rebuilt from its config
        original = load_config(teacher.path / "config.yaml")
        config.data, config.seed = original.data, original.seed
    config.model.max_length = teacher.manifest["max_length"]
    config.model.name_or_path = config.distill.student or teacher.manifest["base_model"]["given"]
    return train(config, store)


def distillation_table(run: Run) -> str:
    """Teacher against student: validation score, parameters, size and latency."""
    info = run.manifest["strategy_info"]["distillation"]
    teacher, student = info["teacher"], info["student"]
    scores = run.manifest["metrics"]["validation"]
    lines = ["| model | validation accuracy | macro-F1 | parameters | size | latency (ms/example, batch 1) |",
             "|---|---|---|---|---|---|",
             f"| teacher {teacher['run']} ({teacher['strategy']}) | {teacher['validation']['accuracy']:.4f}"
             f" | {teacher['validation']['macro_f1']:.4f} | {teacher['params']:,} | {teacher['artifact_bytes'] / 2**20:.1f} MB"
             f" | {teacher['latency_ms']:.2f} |",
             f"| student {run.id} ({student['model']}) | {scores['accuracy']:.4f} | {scores['macro_f1']:.4f}"
             f" | {student['params']:,} | {run.manifest['artifact_bytes'] / 2**20:.1f} MB | {student['latency_ms']:.2f} |",
             "", f"student/teacher: {scores['accuracy'] / max(teacher['validation']['accuracy'], 1e-9):.1%} of the accuracy,"
             f" {student['params'] / teacher['params']:.0%} of the parameters,"
             f" {teacher['latency_ms'] / max(student['latency_ms'], 1e-9):.2f}x faster"]
    return "\n".join(lines)


def _choose_strategy(config: RunConfig, ref: Any, tokenizer: Any, data: ClassificationData) -> dict[str, Any]:
    """--strategy auto: make the plan, apply its recommendation, and keep the reasons and the estimate."""
    from tunelab.plan import make_plan

    plan = make_plan(config, ref, tokenizer, data)
    choice = plan["recommendation"]
    config.strategy = choice["strategy"]
    console.info(f"--strategy auto chose {config.strategy}: " + "; ".join(choice["reasons"]))
    return {"auto": choice, "estimate": plan["estimates"][config.strategy]}


def guardrails(config: RunConfig, ref: Any, tokenizer: Any, train_rows: int) -> list[advice.Finding]:
    """Run the pitfall checks, print warnings, and stop on errors unless --force."""
    findings = advice.check_hyperparameters(config, train_rows) + advice.check_tokenizer(tokenizer, load_model_config(ref))
    findings += advice.check_model_size(encoder_parameter_count(ref), train_rows, config.strategy)
    advice.enforce(findings, config.force)
    for finding in findings:
        if finding.level == "warning" or (finding.level == "error" and config.force):
            console.warn(f"{finding.code}: {finding.message}")
    return findings


def _score(predictor: Any, examples: Examples, labels: list[str], quiet: bool) -> dict[str, Any]:
    probabilities = predictor.predict_proba(examples.texts, examples.pairs, progress=not quiet)
    return compute_metrics(examples.labels, probabilities, labels)


def run_data_config(run: Run, overrides: dict[str, str | None]) -> DataConfig:
    """The run's own column names, with `overrides` (from flags) applied."""
    columns = run.manifest["columns"]
    config = DataConfig(text_column=columns["text"], text_pair_column=columns["text_pair"], label_column=columns["label"])
    for key, value in overrides.items():
        if value is not None:
            setattr(config, key, value)
    return config


def evaluate(run_id: str, source: str, store: RunStore, columns: dict[str, str | None] | None = None,
             quiet: bool = False) -> dict[str, Any]:
    """Score a run on a labelled file; the result is also saved under the run's evaluations/."""
    run = store.get(run_id)
    if run.manifest.get("task_kind", "classification") != "classification":
        from tunelab.task_pipeline import evaluate_task

        return evaluate_task(run, source, store, columns, quiet)
    data_config = run_data_config(run, columns or {})
    examples, _ = read_examples(source, data_config, run.manifest["labels"], "test")
    metrics = compute_metrics(examples.labels, load_run_predictor(run, store.root).predict_proba(
        examples.texts, examples.pairs, progress=not quiet), run.manifest["labels"])
    metrics.update({"run": run.id, "data": source, "sha256": file_digest(source),
                    "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    folder = run.path / "evaluations"
    folder.mkdir(exist_ok=True)
    write_json(folder / f"{Path(source).stem}-{time.strftime('%Y%m%d-%H%M%S')}.json", metrics)
    return metrics


def predict(run_id: str, source: str, output: str, store: RunStore, columns: dict[str, str | None] | None = None,
            quiet: bool = False, batch_size: int = 64) -> int:
    """Write one JSON line per input row (label, score, probabilities; other tasks: their answer); returns the row count."""
    run = store.get(run_id)
    if run.manifest.get("task_kind", "classification") != "classification":
        from tunelab.task_pipeline import predict_task

        return predict_task(run, source, output, store, columns, quiet, batch_size)
    data_config = run_data_config(run, columns or {})
    examples, _ = read_examples(source, data_config, run.manifest["labels"], "test", with_labels=False)
    probabilities = load_run_predictor(run, store.root).predict_proba(
        examples.texts, examples.pairs, batch_size=batch_size, progress=not quiet)
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in prediction_records(examples, probabilities, run.manifest["labels"]):
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, target)  # never a half-written predictions file under the user's name
    return len(examples)


__all__ = ["evaluate", "predict", "train", "versions"]
