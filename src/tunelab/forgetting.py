"""`--probe-forgetting`: how much general language a fine-tuned encoder lost (catastrophic forgetting).

The same masked-LM probe as `tunelab adapt`: one MLM head (the checkpoint's, or a new one fitted on
the frozen *pre-trained* encoder), the same fixed masks, general-English text; the loss of the base
encoder against the loss of the fine-tuned one under that head. A rise means forgotten language.
"""

from __future__ import annotations

from typing import Any

from tunelab.config import RunConfig
from tunelab.data.corpus import read_corpus
from tunelab.models import ModelRef
from tunelab.strategies import dapt


def probe_forgetting(config: RunConfig, ref: ModelRef, tokenizer: Any, tuned_encoder: Any, head_texts: list[str]) -> dict[str, Any]:
    """General-English MLM loss of the base encoder and of `tuned_encoder`, under one head fitted on `head_texts`."""
    from tunelab.adapt import general_probe_path

    settings = config.adapt
    general = read_corpus(settings.general_corpus or str(general_probe_path()), settings.text_column, settings.encoding)
    probe = dapt.mlm_dataset(tokenizer, general, config.model.max_length, False, False)
    probe = probe.select(range(min(settings.max_probe_blocks, len(probe))))
    model, head = dapt.build_mlm_model(ref)
    if head["head"] == "built" and settings.head_warmup_steps > 0:
        # The task's own texts train the head, so the probe text stays unseen by it.
        dapt.fit_head(model, tokenizer, dapt.mlm_dataset(tokenizer, head_texts, config.model.max_length, True, False), config)
    before = dapt.masked_lm_loss(model, tokenizer, probe, config)
    missing, _ = model.base_model.load_state_dict(tuned_encoder.state_dict(), strict=False)
    if [key for key in missing if "pooler" not in key]:
        raise RuntimeError(f"forgetting probe: the fine-tuned encoder lacks {missing[:3]}")
    after = dapt.masked_lm_loss(model, tokenizer, probe, config)
    return {"probe": settings.general_corpus or "tunelab general-English probe", "blocks": len(probe), "mlm_head": head["head"],
            "mlm_loss_before": round(before, 4), "mlm_loss_after": round(after, 4),
            "perplexity_before": dapt.perplexity(before), "perplexity_after": dapt.perplexity(after),
            "change": round(after / before - 1, 4)}
