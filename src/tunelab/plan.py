"""`tunelab plan`: look at the data, the model and this machine, estimate each strategy, recommend one.

Estimates come from a short measured calibration (a few real Trainer steps on a real batch of the
data), not from a constant table, and every run records its estimate beside what it really took.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback

from tunelab import advice, llm_baseline
from tunelab.config import RunConfig
from tunelab.errors import UserError
from tunelab.hardware import describe, resolve_precision
from tunelab.models import ModelRef, encoder_parameter_count, inference_device, load_encoder
from tunelab.resources import Measure
from tunelab.strategies import DEFAULT_LEARNING_RATE
from tunelab.tasks.classification import ClassificationData, Examples, tokenize

CALIBRATION_STEPS = 6  # the first two warm up kernels and caches and are not timed


def data_profile(data: ClassificationData, tokenizer: Any, max_length: int) -> dict[str, Any]:
    """Rows, class balance, token-length percentiles, truncation, duplicates and split overlap."""
    counts = Counter(data.labels[i] for i in data.train.labels.tolist())
    sample = data.train.texts[:5000]
    pairs = data.train.pairs[:5000] if data.train.pairs else None
    lengths = np.array([len(ids) for ids in tokenizer(sample, pairs)["input_ids"]])
    normalised = [" ".join(t.split()).lower() for t in data.train.texts]
    return {
        "rows": {"train": len(data.train), "validation": len(data.validation), "test": len(data.test) if data.test else 0},
        "examples_per_class": dict(sorted(counts.items())),
        "imbalance_ratio": round(max(counts.values()) / max(min(counts.values()), 1), 2),
        "token_length": {f"p{q}": int(np.percentile(lengths, q)) for q in (50, 90, 95, 99)} | {"max": int(lengths.max())},
        "truncated_share": round(float((lengths > max_length).mean()), 4),
        "duplicates_in_train": len(normalised) - len(set(normalised)),
        "warnings": data.warnings,
    }


class StepClock(TrainerCallback):
    """Trainer callback: wall time of each optimiser step."""

    def __init__(self) -> None:
        self.times: list[float] = []

    def on_step_begin(self, *args: Any, **kwargs: Any) -> None:
        self._start = time.perf_counter()

    def on_step_end(self, *args: Any, **kwargs: Any) -> None:
        self.times.append(time.perf_counter() - self._start)


def calibrate_training(config: RunConfig, ref: ModelRef, tokenizer: Any, data: ClassificationData, strategy: str) -> dict[str, float]:
    """Seconds per optimiser step and peak memory, from a few real Trainer steps on sampled batches."""
    from transformers import PrinterCallback

    from tunelab.strategies.finetune import prepare_model
    from tunelab.training import build_trainer

    batch = config.train.per_device_train_batch_size
    rows = np.random.default_rng(config.seed).choice(len(data.train), size=min(len(data.train), batch * CALIBRATION_STEPS), replace=False)
    # One representative shape (median length): new shapes cost kernel set-up that a long run amortises.
    texts = data.train.select(np.sort(rows))
    median = int(np.median([len(ids) for ids in tokenizer(texts.texts, texts.pairs)["input_ids"]]))
    sample = tokenize(tokenizer, texts, min(config.model.max_length, max(8, -(-median // 8) * 8)), "Calibrating")
    clock = StepClock()
    started = time.perf_counter()
    with Measure() as cost, tempfile.TemporaryDirectory() as scratch:
        model, _ = prepare_model(config, ref, data.labels, strategy, CALIBRATION_STEPS)
        trainer = build_trainer(config, model, tokenizer, sample, None, Path(scratch), DEFAULT_LEARNING_RATE[strategy],
                                max_steps=CALIBRATION_STEPS, eval_strategy="no", save_strategy="no", load_best_model_at_end=False,
                                disable_tqdm=True, logging_strategy="no")
        trainer.add_callback(clock)
        trainer.remove_callback(PrinterCallback)
        trainer.train()
        # Loading, tokenising, saving and reloading the best epoch: paid once per run or per epoch, whatever the data size.
        start = time.perf_counter()
        trainer.save_model(Path(scratch) / "probe")
        save_seconds = time.perf_counter() - start
    timed = clock.times[2:] or clock.times
    setup = (time.perf_counter() - started) - sum(clock.times) - save_seconds
    return {"seconds_per_step": float(np.median(timed)), "setup_seconds": setup, "save_seconds": save_seconds,
            "peak_rss_mb": cost.peak_rss_mb, "peak_gpu_mb": cost.peak_gpu_mb or 0.0}


def calibrate_embedding(config: RunConfig, ref: ModelRef, tokenizer: Any, examples: Examples) -> dict[str, float]:
    """Texts per second for the frozen encoder, and peak memory."""
    from tunelab.embedding import embed

    sample = examples.select(np.arange(min(len(examples), 2 * config.features.batch_size)))
    precision = resolve_precision(config.train.precision)
    with Measure() as cost:
        encoder = load_encoder(ref).to(inference_device())
        embed(encoder, tokenizer, sample.texts[:8], sample.pairs[:8] if sample.pairs else None, max_length=config.model.max_length,
              progress=False, precision=precision)  # warm-up
        start = time.perf_counter()
        embed(encoder, tokenizer, sample.texts, sample.pairs, max_length=config.model.max_length,
              batch_size=config.features.batch_size, progress=False, precision=precision)
        rate = len(sample) / (time.perf_counter() - start)
    return {"texts_per_second": rate, "peak_rss_mb": cost.peak_rss_mb, "peak_gpu_mb": cost.peak_gpu_mb or 0.0}


def estimate(config: RunConfig, ref: ModelRef, tokenizer: Any, data: ClassificationData, strategy: str) -> dict[str, float]:
    """Estimated wall seconds and peak memory of training `strategy` on this data here."""
    n_train, n_val = len(data.train), len(data.validation)
    if strategy == "features":
        rate = calibrate_embedding(config, ref, tokenizer, data.train)
        seconds = n_train / rate["texts_per_second"] + 0.002 * n_train  # + the logistic-regression fit
        return {"seconds": round(seconds, 1), "peak_rss_mb": round(rate["peak_rss_mb"]), "basis": rate}
    step = calibrate_training(config, ref, tokenizer, data, "full" if strategy == "fewshot" else strategy)
    train = config.train
    if strategy == "fewshot":  # every pair is two texts through the encoder; then the training texts are embedded once
        pairs = 2 * config.fewshot.iterations * n_train
        steps = math.ceil(math.ceil(pairs / train.per_device_train_batch_size) * config.fewshot.num_train_epochs)
        seconds = 2 * steps * step["seconds_per_step"] + step["setup_seconds"] + n_train * step["seconds_per_step"] / 8
        return {"seconds": round(seconds, 1), "peak_rss_mb": round(step["peak_rss_mb"]), "peak_gpu_mb": round(step["peak_gpu_mb"]),
                "basis": step}
    steps = math.ceil(n_train / (train.per_device_train_batch_size * train.gradient_accumulation_steps))
    steps = train.max_steps if train.max_steps > 0 else math.ceil(steps * train.num_train_epochs)
    epochs = math.ceil(train.num_train_epochs)
    # Evaluation: a forward pass only, about a third of a training step's work per example.
    eval_seconds = epochs * n_val * step["seconds_per_step"] / train.per_device_train_batch_size / 3
    overhead = step["setup_seconds"] + epochs * 2 * step["save_seconds"]  # a checkpoint per epoch, then the run's copy
    seconds = steps * step["seconds_per_step"] + eval_seconds + overhead
    return {"seconds": round(seconds, 1), "peak_rss_mb": round(step["peak_rss_mb"]),
            "peak_gpu_mb": round(step["peak_gpu_mb"]), "basis": step}


def make_plan(config: RunConfig, ref: ModelRef, tokenizer: Any, data: ClassificationData,
              strategies: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Data profile, hardware, per-strategy estimates and the recommendation with its reasons."""
    if strategies is None:  # few-shot only where it can be the answer
        strategies = ("fewshot", "features", "lora", "full") if len(data.train) < 1_000 else ("features", "lora", "full")
    from tunelab.adapt import general_probe_path
    from tunelab.data.corpus import read_corpus
    from tunelab.strategies.dapt import tokenizer_statistics

    machine = describe()
    estimates = {s: estimate(config, ref, tokenizer, data, s) for s in strategies}
    budget = (machine["gpu"]["memory_mb"] if machine["gpu"] else machine["free_ram_mb"]) or float("inf")
    key = "peak_gpu_mb" if machine["gpu"] else "peak_rss_mb"
    fits = {s: e.get(key, e["peak_rss_mb"]) < 0.9 * budget for s, e in estimates.items()}
    domain = tokenizer_statistics(tokenizer, data.train.texts)
    general = tokenizer_statistics(tokenizer, read_corpus(str(general_probe_path())))
    shift = advice.domain_shift_level(domain, general)
    choice = advice.recommend(len(data.train), fits, shift, encoder_parameter_count(ref))
    baseline = llm_baseline.score(data, seed=config.seed) if llm_baseline.configured() else None
    return {"llm_baseline": baseline,"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "model": ref.given,
            "data": data_profile(data, tokenizer, config.model.max_length), "hardware": machine,
            "estimates": estimates, "fits_in_memory": fits,
            "domain_shift": {"level": shift, "tokenizer_domain": domain, "tokenizer_general": general},
            "recommendation": {"strategy": choice.strategy, "reasons": choice.reasons, "suggestions": choice.suggestions}}


def render(plan: dict[str, Any]) -> str:
    """The plan as text for the terminal."""
    data, machine, shift = plan["data"], plan["hardware"], plan["domain_shift"]
    gpu = f"{machine['gpu']['name']} ({machine['gpu']['memory_mb']} MB)" if machine["gpu"] else "none"
    lines = [f"data: {data['rows']['train']} train / {data['rows']['validation']} validation rows;"
             f" per class {data['examples_per_class']}; imbalance {data['imbalance_ratio']}x",
             f"tokens: median {data['token_length']['p50']}, p95 {data['token_length']['p95']}, max {data['token_length']['max']};"
             f" {data['truncated_share']:.1%} truncated; {data['duplicates_in_train']} duplicate texts in train",
             f"hardware: {machine['cpu_cores']} CPU cores (bf16: {'yes' if machine['cpu_bf16'] else 'no'}), GPU: {gpu},"
             f" free RAM {machine['free_ram_mb']} MB; training precision (auto): {machine['auto_precision']}",
             f"domain shift: {shift['level']} (sub-words per word {shift['tokenizer_domain']['subwords_per_word']}"
             f" vs {shift['tokenizer_general']['subwords_per_word']} on general English)", "",
             "| strategy | estimated time | estimated peak memory | fits |", "|---|---|---|---|"]
    for strategy, guess in plan["estimates"].items():
        fits = "yes" if plan["fits_in_memory"][strategy] else "no"
        lines.append(f"| {strategy} | {guess['seconds']:.0f} s | {guess['peak_rss_mb']} MB | {fits} |")
    baseline = plan.get("llm_baseline")
    if baseline:
        lines.append("" if "error" in baseline else f"\nLLM baseline ({baseline['model']}, {baseline['shots_per_class']} shots per class,"
                     f" {baseline['rows']} validation rows): accuracy {baseline['accuracy']:.4f}, macro-F1 {baseline['macro_f1']:.4f}")
        if "error" in baseline:
            lines.append(f"LLM baseline unavailable: {baseline['error']}")
    choice = plan["recommendation"]
    lines += ["", f"recommended: --strategy {choice['strategy']}"] + [f"  because {r}" for r in choice["reasons"]]
    lines += [f"  consider: {s}" for s in choice["suggestions"]]
    return "\n".join(lines)


def plan_from_config(config: RunConfig, store: Any) -> dict[str, Any]:
    """Load data, model and tokenizer as `train` would, then make the plan."""
    from tunelab.models import load_tokenizer, resolve_model
    from tunelab.tasks.classification import load_data

    config.validate()
    if config.task_kind != "classification":  # estimates are calibrated on a classifier's training step
        raise UserError(f"plan: profiles and estimates cover single-label classification; for {config.task_kind} use"
                        " `tunelab compare --task ...` to measure the strategies directly")
    ref = resolve_model(config.model.name_or_path, config.model.revision, store.root)
    data = load_data(config.data, config.seed)
    return make_plan(config, ref, load_tokenizer(ref, config.model.tokenizer), data)
