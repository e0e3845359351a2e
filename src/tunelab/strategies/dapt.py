"""Domain-adaptive pre-training: continued masked-LM training of the encoder, and its probes.

When the checkpoint ships no MLM head (the bundled MiniLM does not), one is built with its decoder
tied to the input embeddings, then fitted for a few steps with the encoder frozen. Only then are
"before" losses measured, so before/after compare encoders, not a random head with a trained one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from tunelab import console
from tunelab.config import RunConfig
from tunelab.errors import UserError
from tunelab.models import ModelRef, load_error
from tunelab.training import build_trainer


def build_mlm_model(ref: ModelRef) -> tuple[Any, dict[str, Any]]:
    """The model with an MLM head (from the checkpoint, or new and tied), and a report of which."""
    from transformers import AutoModel, AutoModelForMaskedLM

    try:
        model, info = AutoModelForMaskedLM.from_pretrained(ref.path, revision=ref.revision, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise load_error(ref, exc) from None
    prefix = f"{model.base_model_prefix}."
    new_head = sorted(k for k in info.get("missing_keys", ()) if not k.startswith(prefix))
    output, inputs = model.get_output_embeddings(), model.get_input_embeddings()
    if output is None:
        raise UserError(f"model {ref.given}: {type(model).__name__} has no output embeddings to tie an MLM head to")
    if new_head and output.weight.data_ptr() != inputs.weight.data_ptr():
        output.weight = inputs.weight  # a new decoder starts as the (pre-trained) input embeddings
    # Keep a pre-trained pooler the MLM architecture drops, so classifiers built on this run get it.
    if getattr(model.base_model, "pooler", "absent") is None:
        pooler = getattr(AutoModel.from_pretrained(ref.path, revision=ref.revision), "pooler", None)
        if pooler is not None:
            model.base_model.pooler = pooler
    tied = model.get_output_embeddings().weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    return model, {"head": "built" if new_head else "from checkpoint", "new_parameters": new_head,
                   "decoder_tied_to_input_embeddings": tied}


def mlm_dataset(tokenizer: Any, texts: list[str], max_length: int, line_by_line: bool, whole_word_mask: bool) -> Any:
    """Token blocks for MLM: documents concatenated and cut to `max_length`, or one (truncated) line each."""
    import datasets

    keep_offsets = whole_word_mask and tokenizer.is_fast

    # The collator cannot pad offset mappings, so whole-word lines are padded here instead.
    padding = "max_length" if line_by_line and keep_offsets else False

    def encode(batch: dict[str, list]) -> dict[str, list]:
        return tokenizer(batch["text"], return_special_tokens_mask=True, return_offsets_mapping=keep_offsets,
                         truncation=line_by_line, max_length=max_length if line_by_line else None, padding=padding)

    def group(batch: dict[str, list]) -> dict[str, list]:
        joined = {key: sum(batch[key], []) for key in batch}
        usable = (len(joined["input_ids"]) // max_length) * max_length
        if usable == 0:  # a corpus shorter than one block still gives one block
            usable = len(joined["input_ids"])
        return {key: [values[i:i + max_length] for i in range(0, usable, max_length)] for key, values in joined.items()}

    dataset = datasets.Dataset.from_dict({"text": texts}).map(encode, batched=True, remove_columns=["text"], desc="Tokenising corpus")
    if not line_by_line:
        dataset = dataset.map(group, batched=True, batch_size=1000, desc=f"Grouping into {max_length}-token blocks")
    return dataset


def collator(tokenizer: Any, config: RunConfig, seed: int | None = None) -> Any:
    """The stock dynamic-masking collator (15% of tokens; 80% [MASK], 10% random, 10% kept)."""
    from transformers import DataCollatorForLanguageModeling

    if tokenizer.mask_token is None:
        raise UserError(f"model {config.model.name_or_path}: tokenizer has no mask token; masked-LM adaptation needs one")
    return DataCollatorForLanguageModeling(tokenizer, mlm_probability=config.adapt.mlm_probability,
                                           whole_word_mask=config.adapt.whole_word_mask and tokenizer.is_fast, seed=seed)


def masked_lm_loss(model: Any, tokenizer: Any, dataset: Any, config: RunConfig, batch_size: int = 32) -> float:
    """Mean loss over masked tokens with masks fixed by a seed, so before and after see the same masks."""
    import torch

    mask = collator(tokenizer, config, seed=config.seed)
    device = next(model.parameters()).device
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(dataset), batch_size):
            batch = mask([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
            batch = {k: v.to(device) for k, v in batch.items()}
            masked = int((batch["labels"] != -100).sum())
            if masked:
                total += float(model(**batch).loss) * masked
                count += masked
    return total / max(count, 1)


def tokenizer_statistics(tokenizer: Any, texts: list[str]) -> dict[str, float]:
    """Sub-words per whitespace word and the share of unknown tokens: how foreign the text is to the vocabulary."""
    sample = texts[:2000]
    ids = tokenizer(sample, add_special_tokens=False)["input_ids"]
    pieces = sum(len(x) for x in ids)
    words = sum(len(t.split()) for t in sample)
    unknown = sum(x.count(tokenizer.unk_token_id) for x in ids) if tokenizer.unk_token_id is not None else 0
    return {"subwords_per_word": round(pieces / max(words, 1), 4), "unk_rate": round(unknown / max(pieces, 1), 6)}


def head_module(model: Any) -> Any:
    """The MLM head: the one child module besides the encoder (BERT's `cls`, RoBERTa's `lm_head`)."""
    children = [m for name, m in model.named_children() if name != model.base_model_prefix and any(True for _ in m.parameters())]
    if len(children) != 1:
        raise UserError(f"{type(model).__name__}: cannot tell its MLM head apart; set adapt.head_warmup_steps=0")
    return children[0]


def fit_head(model: Any, tokenizer: Any, dataset: Any, config: RunConfig, max_blocks: int = 1024, batch_size: int = 256) -> float:
    """Fit a new MLM head on a frozen encoder; returns its final training loss.

    The encoder is frozen, so its hidden states at masked positions are computed once and the head
    trains on those alone. A Trainer would re-run the encoder and the full-vocabulary decoder over
    every position at every step: about 50x the work for the same result.
    """
    import torch

    mask = collator(tokenizer, config, seed=config.seed)
    blocks = dataset.select(range(min(max_blocks, len(dataset))))
    hidden, targets = [], []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(blocks), 32):
            batch = mask([blocks[i] for i in range(start, min(start + 32, len(blocks)))])
            labels = batch.pop("labels")
            states = model.base_model(**batch).last_hidden_state
            hidden.append(states[labels != -100].clone())
            targets.append(labels[labels != -100].clone())
    hidden, targets = torch.cat(hidden), torch.cat(targets)
    head = head_module(model)
    tied = model.get_input_embeddings().weight
    trainable = [p for p in head.parameters() if p.data_ptr() != tied.data_ptr()]
    optimizer = torch.optim.AdamW(trainable, lr=2e-3, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    head.train()
    loss = torch.tensor(float("nan"))
    for _ in range(config.adapt.head_warmup_steps):
        rows = torch.randint(len(targets), (min(batch_size, len(targets)),), generator=generator)
        loss = torch.nn.functional.cross_entropy(head(hidden[rows]), targets[rows])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.train()
    return loss.item()


def adapt_model(model: Any, tokenizer: Any, train_set: Any, eval_set: Any, config: RunConfig, scratch: Path) -> tuple[Any, dict]:
    """Continued MLM training (full or LoRA, merged back) with the best epoch by held-out loss kept."""
    learning_rate = config.train.learning_rate
    if config.adapt.lora:
        from peft import LoraConfig, get_peft_model

        peft = config.peft
        # Only the low-rank updates train; the head fitted before stays as it is (the cheap variant).
        lora = LoraConfig(r=peft.r, lora_alpha=peft.lora_alpha, lora_dropout=peft.lora_dropout, target_modules=peft.target_modules)
        model = get_peft_model(model, lora)
    trainer = build_trainer(config, model, tokenizer, train_set, eval_set, scratch / "checkpoints", learning_rate,
                            data_collator=collator(tokenizer, config), metric_for_best_model="eval_loss",
                            greater_is_better=False, remove_unused_columns=False)
    trainer.train()
    model = trainer.model
    if config.adapt.lora:
        model = model.merge_and_unload()
    steps = trainer.state.global_step
    batch = config.train.per_device_train_batch_size * config.train.gradient_accumulation_steps
    info = {"steps": steps, "learning_rate": learning_rate, "blocks": len(train_set),
            "tokens_seen": int(steps * batch * np.mean([len(x) for x in train_set["input_ids"][:1000]])),
            "epochs": round(steps * batch / max(len(train_set), 1), 2)}
    return model, {**info, "history": list(trainer.state.log_history)}


def perplexity(loss: float) -> float:
    """exp(loss), rounded; inf-safe."""
    return round(math.exp(min(loss, 50.0)), 3)


def log_head_report(report: dict[str, Any]) -> None:
    """Say how the MLM head came to be."""
    if report["head"] == "built":
        console.info(f"MLM head: none in the checkpoint; built one ({len(report['new_parameters'])} new tensors), decoder tied"
                     f" to the input embeddings: {report['decoder_tied_to_input_embeddings']}")
    else:
        console.info("MLM head: loaded from the checkpoint")
