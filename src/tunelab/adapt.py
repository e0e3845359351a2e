"""`tunelab adapt`: continued masked-LM pre-training on domain text, written as a normal run.

The run measures what it gained (masked-LM loss on held-out domain text) and what it forgot (on
general English), before and after, and records how far the domain is from the model's own.
"""

from __future__ import annotations

import copy
import tempfile
import time
from importlib import resources
from pathlib import Path

import numpy as np
import yaml

from tunelab import advice, console
from tunelab.config import RunConfig
from tunelab.data.corpus import read_corpus
from tunelab.errors import UserError
from tunelab.models import fingerprint, load_tokenizer, parameter_counts, resolve_model
from tunelab.pipeline import guardrails, seed_everything, versions
from tunelab.registry import MANIFEST, Run, RunStore, folder_size, write_json
from tunelab.resources import Measure
from tunelab.strategies import DEFAULT_LEARNING_RATE, dapt


def general_probe_path() -> Path:
    """The general-English forgetting probe shipped with tunelab (hand-written, 118 sentences)."""
    return Path(str(resources.files("tunelab") / "probes" / "general_english.txt"))


def split_documents(texts: list[str], share: float, seed: int) -> tuple[list[str], list[str]]:
    """Seeded document-level split into (train, held-out); one document is used for both."""
    if len(texts) < 2:
        return texts, texts
    order = np.random.default_rng(seed).permutation(len(texts))
    n_held = min(max(1, int(round(share * len(texts)))), len(texts) - 1)
    held = set(order[:n_held].tolist())
    return [t for i, t in enumerate(texts) if i not in held], [t for i, t in enumerate(texts) if i in held]


def adapt(config: RunConfig, store: RunStore) -> Run:
    """Adapt the model to the corpus; the result is usable as `--model run:<id>` by every command."""
    config = copy.deepcopy(config)
    config.strategy = "adapt"
    config.validate()
    settings = config.adapt
    if not settings.corpus:
        raise UserError("adapt.corpus: no corpus given; pass --corpus FILE (a .txt, a folder of .txt, or a table)")
    if config.train.learning_rate is None:
        config.train.learning_rate = DEFAULT_LEARNING_RATE["adapt-lora" if settings.lora else "adapt"]
    ref = resolve_model(config.model.name_or_path, config.model.revision, store.root)
    texts = read_corpus(settings.corpus, settings.text_column, settings.encoding)
    general = read_corpus(settings.general_corpus or str(general_probe_path()), settings.text_column, settings.encoding)
    train_texts, held_texts = split_documents(texts, settings.held_out, config.seed)
    if train_texts is held_texts:
        console.warn(f"{settings.corpus}: a single document; the domain probe reuses the training text")
    tokenizer = load_tokenizer(ref, config.model.tokenizer)
    findings = guardrails(config, ref, tokenizer, len(texts))
    seed_everything(config.seed)
    length = config.model.max_length

    def blocks(corpus: list[str], cap: int | None = None):
        dataset = dapt.mlm_dataset(tokenizer, corpus, length, settings.line_by_line, settings.whole_word_mask)
        return dataset.select(range(min(cap, len(dataset)))) if cap else dataset

    with store.writing(config.output_dir, "adapt") as draft, tempfile.TemporaryDirectory(prefix="tunelab-") as scratch:
        model, head = dapt.build_mlm_model(ref)
        dapt.log_head_report(head)
        train_set = blocks(train_texts)
        domain_probe, general_probe = blocks(held_texts, settings.max_probe_blocks), blocks(general, settings.max_probe_blocks)
        console.info(f"[{draft.id}] adapting {ref.given}: {len(train_texts)} documents -> {len(train_set)} blocks of"
                     f" {length} tokens; probes: {len(domain_probe)} domain, {len(general_probe)} general blocks")
        with Measure() as cost:
            if head["head"] == "built" and settings.head_warmup_steps > 0:
                head["fit_loss"] = round(dapt.fit_head(model, tokenizer, train_set, config), 4)
            before = {name: dapt.masked_lm_loss(model, tokenizer, probe, config)
                      for name, probe in (("domain", domain_probe), ("general", general_probe))}
            model, info = dapt.adapt_model(model, tokenizer, train_set, domain_probe, config, Path(scratch))
            after = {name: dapt.masked_lm_loss(model, tokenizer, probe, config)
                     for name, probe in (("domain", domain_probe), ("general", general_probe))}
        model.save_pretrained(draft.path / "model")
        tokenizer.save_pretrained(draft.path / "model")
        probes = {name: {"mlm_loss_before": round(before[name], 4), "mlm_loss_after": round(after[name], 4),
                         "perplexity_before": dapt.perplexity(before[name]), "perplexity_after": dapt.perplexity(after[name]),
                         "change": round(after[name] / before[name] - 1, 4)} for name in before}
        shift = {"mlm_loss_domain": round(before["domain"], 4), "mlm_loss_general": round(before["general"], 4),
                 "loss_ratio": round(before["domain"] / before["general"], 4),
                 "tokenizer_domain": dapt.tokenizer_statistics(tokenizer, texts),
                 "tokenizer_general": dapt.tokenizer_statistics(tokenizer, general)}
        history = info.pop("history")
        trainable, total = parameter_counts(model)
        manifest = {
            "kind": "run", "id": draft.id, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "task": "masked-lm",
            "strategy": "adapt", "artifact": "model",
            "base_model": {"given": ref.given, "path": ref.path, "revision": ref.revision, "fingerprint": fingerprint(ref)},
            "max_length": length, "versions": versions(), "mlm_head": head, "lora": settings.lora,
            "metrics": {"probes": probes}, "domain_shift": shift, "adaptation": info, "advice": advice.as_records(findings),
            "corpus": {"source": settings.corpus, "documents": len(texts), "train_documents": len(train_texts),
                       "held_out_documents": len(held_texts) if train_texts is not held_texts else 0,
                       "general_probe": settings.general_corpus or "tunelab general-English probe"},
            "train_seconds": round(cost.seconds, 2), "peak_rss_mb": round(cost.peak_rss_mb, 1),
            "trainable_params": trainable, "total_params": total,
        }
        (draft.path / "config.yaml").write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
        write_json(draft.path / "metrics.json", {"probes": probes, "domain_shift": shift, "history": history})
        manifest["artifact_bytes"] = folder_size(draft.path / "model")
        write_json(draft.path / MANIFEST, manifest)
    run = store.get(draft.id)
    console.result(probe_table(probes) + f"\n\n[{run.id}] adapted in {cost.seconds:.0f}s ({info['tokens_seen']:,} tokens seen)"
                   f" -> {run.path}; use it with --model run:{run.id}")
    return run


def probe_table(probes: dict[str, dict[str, float]]) -> str:
    """Before/after masked-LM loss as a Markdown table."""
    lines = ["| probe | MLM loss before | after | perplexity before | after | change |", "|---|---|---|---|---|---|"]
    names = {"domain": "domain (held-out)", "general": "general English (forgetting)"}
    for name, p in probes.items():
        lines.append(f"| {names[name]} | {p['mlm_loss_before']:.4f} | {p['mlm_loss_after']:.4f} | {p['perplexity_before']:.2f}"
                     f" | {p['perplexity_after']:.2f} | {p['change']:+.1%} |")
    return "\n".join(lines)
