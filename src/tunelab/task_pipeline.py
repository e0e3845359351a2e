"""train / evaluate / predict / embed for the task heads beyond single-label classification.

Same run store, manifest layout, guardrails and Trainer as classification (pipeline.py); what
differs is delegated to the task object (tasks.base.Task): reading, model, metrics, records.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tunelab import advice, console, distributed
from tunelab.config import RunConfig, load_config
from tunelab.errors import UserError
from tunelab.hardware import resolve_precision
from tunelab.models import fingerprint, inference_device, load_tokenizer, resolve_model
from tunelab.registry import CHECKPOINTS, MANIFEST, Run, RunStore, folder_size, write_json
from tunelab.resources import Measure
from tunelab.strategies.base import FitContext
from tunelab.tasks import task_for
from tunelab.tasks.base import Task, TaskData

TASK_STRATEGIES = ("features", "full", "lora")


def headline_text(manifest: dict[str, Any], split: str = "validation") -> str:
    """'f1 0.8812' for a run's headline metric on a split ('-' when absent)."""
    metric = manifest.get("metric", "accuracy")
    value = manifest.get("metrics", {}).get(split, {}).get(metric)
    return f"{metric} {value:.4f}" if isinstance(value, (int, float)) else "-"


def train_task(config: RunConfig, store: RunStore, data: TaskData | None = None, resume: Path | None = None) -> Run:
    """Fit one strategy for the config's task, save the run, and score the reloaded run on validation (and test)."""
    from tunelab.pipeline import guardrails, seed_everything

    config = copy.deepcopy(config).validate()
    task = task_for(config)
    distributed.init()
    if distributed.world_size() > 1:
        raise UserError(f"task {config.task_kind}: multi-process training is available for classification; run it in one process")
    ref = resolve_model(config.model.name_or_path, config.model.revision, store.root)
    if data is None:
        data = task.load_data()
        for message in data.warnings:
            console.warn(message)
    tokenizer = load_tokenizer(ref, config.model.tokenizer)
    auto = _auto_strategy(config, len(data.train)) if config.strategy == "auto" else None
    if config.strategy not in TASK_STRATEGIES:
        raise UserError(f"config strategy: {config.task_kind} trains with {', '.join(TASK_STRATEGIES)}, not {config.strategy}")
    if config.train.learning_rate is None and config.strategy != "features":
        from tunelab.strategies import DEFAULT_LEARNING_RATE, TASK_FULL_LEARNING_RATE

        default = DEFAULT_LEARNING_RATE[config.strategy]
        config.train.learning_rate = TASK_FULL_LEARNING_RATE.get(config.task_kind, default) if config.strategy == "full" else default
    config.train.precision = resolve_precision(config.train.precision)
    findings = guardrails(config, ref, tokenizer, len(data.train))
    seed_everything(config.seed)
    with store.writing(config.output_dir, f"{config.task_kind}-{config.strategy}", resume) as draft:
        (draft.path / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        console.info(f"[{draft.id}] training {config.task_kind} with {config.strategy} on {ref.given}: {len(data.train)} train /"
                     f" {len(data.validation)} validation rows" + (f", {len(data.labels)} labels" if data.labels else ""))
        _fit_and_record(config, task, ref, tokenizer, data, draft, store, findings, auto)
    run = store.get(draft.id)
    console.result(f"[{run.id}] validation {headline_text(run.manifest)} ({run.manifest['train_seconds']:.1f}s) -> {run.path}")
    return run


def _auto_strategy(config: RunConfig, rows: int) -> dict[str, Any]:
    choice = advice.recommend(rows, {})
    strategy = "features" if choice.strategy == "fewshot" else choice.strategy  # few-shot pairs are a classification idea
    config.strategy = strategy
    console.info(f"--strategy auto chose {strategy}: " + "; ".join(choice.reasons))
    return {"strategy": strategy, "reasons": choice.reasons}


def _fit_and_record(config: RunConfig, task: Task, ref: Any, tokenizer: Any, data: TaskData, draft: Any, store: RunStore,
                    findings: list[advice.Finding], auto: dict[str, Any] | None) -> None:
    from tunelab.pipeline import file_digest, versions
    from tunelab.strategies.task_fit import fit

    with tempfile.TemporaryDirectory(prefix="tunelab-") as scratch, Measure() as cost:
        try:
            result = fit(FitContext(config, data, ref, tokenizer, draft.path, Path(scratch), store.root, resume=draft.resumed), task)
        except KeyboardInterrupt:
            if (draft.path / CHECKPOINTS).is_dir():
                console.warn(f"[{draft.id}] interrupted; continue it with `tunelab train --resume {draft.id}`")
            raise
    manifest = {
        "kind": "run", "id": draft.id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "task": config.task,
        "task_kind": config.task_kind, "metric": task.metric, "strategy": config.strategy, "artifact": result.artifact,
        "seed": config.seed,
        "base_model": {"given": ref.given, "path": ref.path, "revision": ref.revision, "fingerprint": fingerprint(ref)},
        "labels": data.labels, "max_length": config.model.max_length, "pooling": config.model.pooling,
        "precision": config.train.precision,
        "columns": {"text": config.data.text_column, "text_pair": config.data.text_pair_column, "label": config.data.label_column},
        "peft_method": config.peft.method if config.strategy == "lora" else None, "processes": 1, "resumed": draft.resumed,
        "versions": versions(), "task_info": data.info,
    }
    predictor = load_task_predictor(draft.path, manifest, store.root)  # score what was saved, not what is in memory
    validation = predictor.predict(data.validation, progress=not config.quiet)
    tuned = task.tune(validation, data.validation, data.info, data.labels)
    manifest["task_info"].update(tuned)
    metrics = {"validation": task.score(validation, data.validation, manifest["task_info"], data.labels)}
    if data.test is not None:
        test = predictor.predict(data.test, progress=not config.quiet)
        metrics["test"] = task.score(test, data.test, manifest["task_info"], data.labels)
    summary = {split: {"rows": len(rows), "source": data.sources.get(split), "sha256": file_digest(data.sources.get(split))}
               for split, rows in (("train", data.train), ("validation", data.validation), ("test", data.test)) if rows is not None}
    manifest.update({
        "metrics": {split: task.headline(m) for split, m in metrics.items()},
        "train_seconds": round(cost.seconds, 2), "peak_rss_mb": round(cost.peak_rss_mb, 1),
        "peak_gpu_mb": round(cost.peak_gpu_mb, 1) if cost.peak_gpu_mb is not None else None,
        "trainable_params": result.trainable_params, "total_params": result.total_params, "strategy_info": result.info,
        "advice": advice.as_records(findings) + result.info.pop("advice", []), "plan": {"auto": auto} if auto else {},
        "data": {**summary, "warnings": data.warnings},
    })
    write_json(draft.path / "metrics.json", {**metrics, "history": result.history})
    manifest["artifact_bytes"] = folder_size(draft.path / result.artifact)
    write_json(draft.path / MANIFEST, manifest)


@dataclass
class TaskPredictor:
    """A loaded run of a task head: its model, tokenizer and what it learnt about the data."""

    task: Task
    model: Any
    tokenizer: Any
    manifest: dict[str, Any]

    def predict(self, rows: list[Any], batch_size: int = 64, progress: bool = False) -> Any:
        """The task's raw predictions for rows (score() and records() read them)."""
        return self.task.predict(self.model, self.tokenizer, rows, self.manifest.get("task_info", {}), self.manifest["labels"],
                                 batch_size=batch_size, progress=progress, precision=self.manifest.get("precision", "fp32"))

    def records(self, rows: list[Any], batch_size: int = 64, progress: bool = False) -> list[dict[str, Any]]:
        """One JSON-ready answer per row."""
        predictions = self.predict(rows, batch_size, progress)
        return self.task.records(predictions, rows, self.manifest.get("task_info", {}), self.manifest["labels"])


def run_task(run_dir: Path, overrides: dict[str, Any] | None = None) -> Task:
    """The task object a run was trained with (from its config.yaml), with data-column overrides applied."""
    return task_for(load_config(run_dir / "config.yaml", overrides).validate())


def load_task_predictor(run_dir: Path, manifest: dict[str, Any], store_root: Path | None = None,
                        overrides: dict[str, Any] | None = None) -> TaskPredictor:
    """Rebuild a run's model: saved weights, base + adapter (merged), base + head, or the base alone (zero-shot)."""
    from tunelab.inference import base_model_ref

    task = run_task(run_dir, overrides)
    artifact, info, labels = manifest["artifact"], manifest.get("task_info", {}), manifest["labels"]
    if artifact == "model":
        from transformers import AutoTokenizer

        model, _ = task.load_model(str(run_dir / "model"), info, labels, new_head=False)
        return TaskPredictor(task, model.to(inference_device()).eval(), AutoTokenizer.from_pretrained(run_dir / "model"), manifest)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "tokenizer")
    model, _ = task.load_model(base_model_ref(manifest, store_root).path, info, labels)
    if artifact == "head":
        from tunelab.strategies.task_fit import load_head

        model = load_head(model, run_dir / "head")
    elif artifact == "adapter":
        from peft import PeftModel

        adapted = PeftModel.from_pretrained(task.peft_target(model), run_dir / "adapter")
        if manifest.get("peft_method", "lora").lower() in ("lora", "adalora", "ia3"):
            adapted = adapted.merge_and_unload()  # plain weights: no adapter indirection at inference
        model = task.with_peft_target(model, adapted)
    return TaskPredictor(task, model.to(inference_device()).eval(), tokenizer, manifest)


def _column_overrides(columns: dict[str, str | None] | None) -> dict[str, Any]:
    return {f"data.{key}": value for key, value in (columns or {}).items() if value is not None}


def evaluate_task(run: Run, source: str, store: RunStore, columns: dict[str, str | None] | None = None,
                  quiet: bool = False) -> dict[str, Any]:
    """Score a task-head run on a labelled file; also saved under the run's evaluations/."""
    from tunelab.pipeline import file_digest

    predictor = load_task_predictor(run.path, run.manifest, store.root, _column_overrides(columns))
    rows = predictor.task.read(source)
    predictor.task.check(rows, run.manifest["labels"], source)
    metrics = predictor.task.score(predictor.predict(rows, progress=not quiet), rows, run.manifest.get("task_info", {}),
                                   run.manifest["labels"])
    metrics.update({"run": run.id, "task": run.manifest["task_kind"], "metric": run.manifest["metric"], "data": source,
                    "sha256": file_digest(source), "evaluated": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    folder = run.path / "evaluations"
    folder.mkdir(exist_ok=True)
    write_json(folder / f"{Path(source).stem}-{time.strftime('%Y%m%d-%H%M%S')}.json", metrics)
    return metrics


def write_jsonl(records: list[dict[str, Any]], output: str) -> None:
    """Write records atomically: never a half-written file under the user's name."""
    target = Path(output)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, target)


def predict_task(run: Run, source: str, output: str, store: RunStore, columns: dict[str, str | None] | None = None,
                 quiet: bool = False, batch_size: int = 64) -> int:
    """Write one JSON line per input (entities, answer span, similarity, labels or value); returns the row count."""
    predictor = load_task_predictor(run.path, run.manifest, store.root, _column_overrides(columns))
    rows = predictor.task.read(source, with_labels=False)
    write_jsonl(predictor.records(rows, batch_size, progress=not quiet), output)
    return len(rows)


def embed_texts(run: Run, source: str, output: str, store: RunStore, text_column: str | None = None,
                quiet: bool = False, batch_size: int = 64) -> tuple[int, int]:
    """Sentence vectors of a run's bi-encoder for a text file (.npy, or .jsonl with the texts); returns (rows, dimension)."""
    import numpy as np

    from tunelab.data.corpus import read_corpus
    from tunelab.embedding import embed

    if run.manifest.get("task_kind") != "similarity" or run.manifest.get("task_info", {}).get("architecture") != "bi-encoder":
        raise UserError(f"run {run.id}: `embed` needs a similarity bi-encoder run (tunelab train --task similarity); this is"
                        f" {run.manifest.get('task_kind', run.manifest.get('task'))} ({run.manifest.get('strategy')})")
    texts = read_corpus(source, text_column or run.manifest["columns"]["text"])
    predictor = load_task_predictor(run.path, run.manifest, store.root)
    vectors = embed(predictor.model.encoder, predictor.tokenizer, texts, max_length=run.manifest["max_length"],
                    pooling=run.manifest["pooling"], batch_size=batch_size, progress=not quiet,
                    precision=run.manifest.get("precision", "fp32"))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)  # unit length: a dot product is the cosine
    target = Path(output)
    if target.suffix == ".npy":
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}.tmp-{os.getpid()}.npy")
        np.save(tmp, vectors.astype(np.float32))
        os.replace(tmp, target)
    elif target.suffix in (".jsonl", ".ndjson"):
        write_jsonl([{"row": i, "text": t, "vector": [round(float(x), 6) for x in v]}
                     for i, (t, v) in enumerate(zip(texts, vectors, strict=True), start=1)], output)
    else:
        raise UserError(f"{output}: expected a .npy or .jsonl output file")
    return len(texts), int(vectors.shape[1])
