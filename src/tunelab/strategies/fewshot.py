"""Few-shot (SetFit-style): contrastive fine-tuning of the sentence encoder on pairs built from a handful
of labelled examples, then a logistic-regression head on the tuned embeddings.

With 8 examples per class a classifier head has almost nothing to learn from, but the number of
same-label / different-label *pairs* grows quadratically; teaching the encoder which texts belong
together is what makes few-shot work (Tunstall et al., 2022).
"""

from __future__ import annotations

import numpy as np

from tunelab.embedding import embed
from tunelab.models import inference_device
from tunelab.strategies.base import FitContext, FitResult
from tunelab.strategies.heads import fit_head


def contrastive_pairs(texts: list[str], labels: np.ndarray, iterations: int, seed: int) -> dict[str, list]:
    """For every example, `iterations` times: one partner of its label (score 1) and one of another (score 0)."""
    rng = np.random.default_rng(seed)
    by_label = {label: np.flatnonzero(labels == label) for label in np.unique(labels)}
    first, second, score = [], [], []
    for _ in range(iterations):
        for i, label in enumerate(labels):
            same = by_label[label][by_label[label] != i]
            other = np.flatnonzero(labels != label)
            if len(same):
                first.append(texts[i]), second.append(texts[int(rng.choice(same))]), score.append(1.0)
            if len(other):
                first.append(texts[i]), second.append(texts[int(rng.choice(other))]), score.append(0.0)
    return {"sentence1": first, "sentence2": second, "score": score}


def fit(ctx: FitContext) -> FitResult:
    """Tune the encoder on contrastive pairs (sentence-transformers' Trainer), then fit and save the head."""
    import datasets
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments
    from transformers import PrinterCallback

    config, train = ctx.config, ctx.data.train
    seconds = train.pairs or [None] * len(train)
    texts = [t if p is None else f"{t} {ctx.tokenizer.sep_token} {p}" for t, p in zip(train.texts, seconds, strict=True)]
    word = Transformer(ctx.model_ref.path, max_seq_length=config.model.max_length)
    encoder = SentenceTransformer(modules=[word, Pooling(word.get_embedding_dimension(), pooling_mode=config.model.pooling)],
                                  device=inference_device())
    pairs = datasets.Dataset.from_dict(contrastive_pairs(texts, train.labels, config.fewshot.iterations, config.seed))
    arguments = SentenceTransformerTrainingArguments(
        output_dir=str(ctx.scratch / "fewshot"), num_train_epochs=config.fewshot.num_train_epochs,
        per_device_train_batch_size=config.train.per_device_train_batch_size, learning_rate=config.train.learning_rate,
        warmup_steps=config.train.warmup_steps, weight_decay=config.train.weight_decay, seed=config.seed, data_seed=config.seed,
        bf16=config.train.precision == "bf16", fp16=config.train.precision == "fp16", use_cpu=inference_device() == "cpu",
        save_strategy="no", report_to="none", disable_tqdm=config.quiet, logging_steps=config.train.logging_steps)
    trainer = SentenceTransformerTrainer(model=encoder, args=arguments, train_dataset=pairs, loss=losses.CosineSimilarityLoss(encoder))
    if config.quiet:  # without progress bars the Trainer prints every log dict instead
        trainer.remove_callback(PrinterCallback)
    trainer.train()
    tuned = word.auto_model.eval()
    tuned.save_pretrained(ctx.run_dir / "model")
    ctx.tokenizer.save_pretrained(ctx.run_dir / "model")
    vectors = embed(tuned, ctx.tokenizer, train.texts, train.pairs, max_length=config.model.max_length,
                    pooling=config.model.pooling, batch_size=config.features.batch_size, progress=not config.quiet,
                    precision=config.train.precision)
    head = fit_head(vectors, train.labels, len(ctx.data.labels), config.features, config.seed)
    (ctx.run_dir / "head").mkdir()
    head.save(ctx.run_dir / "head")
    encoder_params = sum(p.numel() for p in tuned.parameters())
    return FitResult(encoder_params + head.parameter_count, encoder_params + head.parameter_count, "model",
                     history=list(trainer.state.log_history), info={"pairs": len(pairs), "steps": trainer.state.global_step})
