"""Feature extraction: a frozen encoder embeds each text once (cached on disk); a small head learns."""

from __future__ import annotations

from tunelab.embedding import EmbeddingCache, embed
from tunelab.models import encoder_parameter_count, fingerprint, inference_device, load_encoder, tokenizer_fingerprint
from tunelab.strategies.base import FitContext, FitResult
from tunelab.strategies.heads import fit_head


def cache_key(ctx: FitContext) -> str:
    """Everything that changes a vector: weights, tokenizer, max length, pooling, precision."""
    model = ctx.config.model
    key = f"{fingerprint(ctx.model_ref)}-{tokenizer_fingerprint(ctx.tokenizer)}-{model.max_length}-{model.pooling}"
    return key if ctx.config.train.precision == "fp32" else f"{key}-{ctx.config.train.precision}"  # fp32 keeps old caches


def fit(ctx: FitContext) -> FitResult:
    """Embed the training texts (reusing cached vectors), fit the head, save it with the tokenizer."""
    config = ctx.config
    encoder = None

    def compute(texts: list[str], pairs: list[str] | None):
        nonlocal encoder
        encoder = encoder or load_encoder(ctx.model_ref).to(inference_device())
        return embed(encoder, ctx.tokenizer, texts, pairs, max_length=config.model.max_length,
                     pooling=config.model.pooling, batch_size=config.features.batch_size, progress=not config.quiet,
                     precision=config.train.precision)

    train = ctx.data.train
    if config.features.cache:
        cache = EmbeddingCache(ctx.cache_root / "embeddings", cache_key(ctx))
        vectors = cache.get_or_compute(train.texts, train.pairs, compute)
        info = {"cache_hits": cache.hits, "cache_misses": cache.misses, "cache_file": str(cache.path)}
    else:
        vectors = compute(train.texts, train.pairs)
        info = {"cache_hits": 0, "cache_misses": len(train)}
    head = fit_head(vectors, train.labels, len(ctx.data.labels), config.features, config.seed)
    (ctx.run_dir / "head").mkdir()
    head.save(ctx.run_dir / "head")
    ctx.tokenizer.save_pretrained(ctx.run_dir / "tokenizer")
    return FitResult(head.parameter_count, head.parameter_count + encoder_parameter_count(ctx.model_ref), "head", info=info)
