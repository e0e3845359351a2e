"""Guardrails: the classic fine-tuning pitfalls, checked before (and while) anything trains.

Pure functions of the config, data sizes and the loaded tokenizer/model config, so each check is
testable on its own. Errors stop a run unless `--force` is given; warnings are printed and recorded
in the run's manifest.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tunelab.config import RunConfig
from tunelab.errors import UserError

# Learning rates that work, per strategy: (warn below, error above).
LEARNING_RATE_RANGES = {"full": (5e-6, 1e-4), "lora": (1e-5, 5e-3), "fewshot": (5e-6, 1e-4), "adapt": (5e-6, 1e-3),
                        "distill": (5e-6, 5e-4)}
# The sub-word algorithm each architecture family was pre-trained with.
TOKENIZER_FAMILY = {"bert": "WordPiece", "distilbert": "WordPiece", "electra": "WordPiece", "mobilebert": "WordPiece",
                    "roberta": "BPE", "gpt2": "BPE", "bart": "BPE", "longformer": "BPE", "llama": "BPE", "mistral": "BPE",
                    "qwen2": "BPE", "albert": "Unigram", "xlm-roberta": "Unigram", "t5": "Unigram", "deberta-v2": "Unigram"}
LARGE_MODEL_PARAMETERS = 350_000_000
FEWSHOT_MAX_ROWS = 500  # measured (bench/RESULTS.md, learning curve); the seed's tree says 100


@dataclass(frozen=True)
class Finding:
    """One piece of advice: `level` is error, warning or info; `code` is stable for scripts."""

    level: str
    code: str
    message: str


def check_hyperparameters(config: RunConfig, train_rows: int) -> list[Finding]:
    """Learning rate out of range for the strategy, no warmup, too many epochs on small data."""
    findings = []
    strategy, train = config.strategy, config.train
    limits = "lora" if strategy == "adapt" and config.adapt.lora else strategy  # LoRA adaptation trains like LoRA
    if limits in LEARNING_RATE_RANGES and train.learning_rate is not None:
        low, high = LEARNING_RATE_RANGES[limits]
        if train.learning_rate > high:
            findings.append(Finding("error", "learning-rate-too-high",
                                    f"train.learning_rate={train.learning_rate:g} is above {high:g} for {strategy}: pre-trained"
                                    f" weights get overwritten in the first steps (catastrophic forgetting); use"
                                    f" {_default_lr('adapt-lora' if limits != strategy else strategy):g}"))
        elif train.learning_rate < low:
            findings.append(Finding("warning", "learning-rate-too-low",
                                    f"train.learning_rate={train.learning_rate:g} is below {low:g} for {strategy}: the model will"
                                    " barely move in a few epochs"))
    if strategy in ("full", "lora", "adapt") and train.warmup_steps == 0:
        findings.append(Finding("warning", "no-warmup", "train.warmup_steps=0: without warmup the first large updates hit a"
                                " randomly initialised head and can wreck the pre-trained weights; 0.1 (10%) is the usual"))
    if strategy == "full" and train.num_train_epochs > 5 and train_rows < 10_000:
        findings.append(Finding("warning", "many-epochs", f"{train.num_train_epochs:g} epochs of full fine-tuning on"
                                f" {train_rows} examples will likely overfit; 2-4 is the proven range (or set"
                                " train.early_stopping_patience)"))
    return findings


def _default_lr(strategy: str) -> float:
    from tunelab.strategies import DEFAULT_LEARNING_RATE

    return DEFAULT_LEARNING_RATE[strategy]


def check_tokenizer(tokenizer: Any, model_config: Any) -> list[Finding]:
    """Tokenizer vocabulary beyond the embedding matrix, a tokenizer of another family, missing special tokens."""
    findings = []
    vocab_rows = getattr(model_config, "vocab_size", None)
    if vocab_rows is not None and len(tokenizer) > vocab_rows:
        findings.append(Finding("error", "tokenizer-vocab-too-large",
                                f"tokenizer has {len(tokenizer)} tokens but the model's embedding matrix has {vocab_rows} rows:"
                                " ids past the end would crash or read garbage; use the model's own tokenizer"))
    expected = TOKENIZER_FAMILY.get(getattr(model_config, "model_type", ""))
    actual = tokenizer_family(tokenizer)
    if expected and actual and expected != actual:
        findings.append(Finding("error", "tokenizer-family-mismatch",
                                f"the model is a {model_config.model_type} ({expected} sub-words) but the tokenizer is {actual}:"
                                " its ids mean different words to this model; use the model's own tokenizer"))
    missing = [name for name in ("pad_token", "unk_token") if getattr(tokenizer, name, None) is None]
    if getattr(tokenizer, "cls_token", None) is None and getattr(tokenizer, "bos_token", None) is None:
        missing.append("cls_token/bos_token")
    if missing:
        findings.append(Finding("error", "special-tokens-missing",
                                f"tokenizer has no {', '.join(missing)}: batching and sequence classification need them"))
    return findings


def tokenizer_family(tokenizer: Any) -> str | None:
    """WordPiece, BPE, Unigram or WordLevel, from a fast tokenizer's backend (None when unknown)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    return type(backend.model).__name__ if backend is not None else None


def check_model_size(total_parameters: int, train_rows: int, strategy: str) -> list[Finding]:
    """A model far larger than simple classification on this much data needs."""
    if total_parameters > LARGE_MODEL_PARAMETERS and train_rows < 10_000 and strategy == "full":
        return [Finding("warning", "oversized-model",
                        f"{total_parameters / 1e6:.0f}M parameters for {train_rows} examples: a base-size model (~100M) or"
                        " the lora strategy usually scores the same for a fraction of the compute")]
    return []


def collapse_finding(distinct_predictions: int, num_labels: int, epoch: float) -> Finding | None:
    """The model predicts one class only: the classic symptom of a too-high learning rate or heavy imbalance."""
    if num_labels > 1 and distinct_predictions <= 1:
        return Finding("warning", "collapse", f"after epoch {epoch:g} the model predicts a single class for every"
                       " validation example; likely causes: learning rate too high, no warmup, or a heavily imbalanced"
                       " training set. Fix: lower train.learning_rate, keep warmup, or balance the classes")
    return None


def overfitting(evaluations: list[tuple[float, float, float]], patience: int) -> bool:
    """True when, for `patience` evaluations in a row, the validation metric sat below its best while the
    validation-minus-train loss gap grew. Each evaluation is (metric, validation loss, mean train loss since the last)."""
    if patience <= 0 or len(evaluations) <= patience:
        return False
    best = max(metric for metric, _, _ in evaluations[:-patience])
    gaps = [validation - train for _, validation, train in evaluations]
    recent = range(len(evaluations) - patience, len(evaluations))
    return all(evaluations[i][0] < best and gaps[i] > gaps[i - 1] for i in recent)


def overfitting_finding(evaluations: list[tuple[float, float, float]], epoch: float, patience: int) -> Finding:
    """The message for an overfitting stop, with the numbers that triggered it."""
    first, last = evaluations[-patience - 1], evaluations[-1]
    return Finding("warning", "overfitting", f"stopped at epoch {epoch:g}: for {patience} evaluation(s) validation"
                   f" {last[0]:.4f} stayed below its best {max(m for m, _, _ in evaluations):.4f} while the validation-train"
                   f" loss gap grew from {first[1] - first[2]:.4f} to {last[1] - last[2]:.4f}; the best epoch is kept."
                   " Fix: fewer epochs, a lower learning rate, more data, or the lora/features strategies")


def enforce(findings: list[Finding], force: bool) -> None:
    """Raise on errors unless forced; warnings are the caller's to print."""
    errors = [f for f in findings if f.level == "error"]
    if errors and not force:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise UserError(f"{errors[0].code}: {errors[0].message}{more}; pass --force to train anyway")


def as_records(findings: list[Finding]) -> list[dict[str, str]]:
    """JSON-ready findings for run.json."""
    return [asdict(f) for f in findings]


@dataclass
class Recommendation:
    """The strategy the decision tree picks, why, and what else to consider."""

    strategy: str
    reasons: list[str]
    suggestions: list[str]


def domain_shift_level(domain: dict[str, float], general: dict[str, float]) -> str:
    """'high' when the vocabulary fits the domain markedly worse than general English, else 'low'."""
    ratio = domain["subwords_per_word"] / max(general["subwords_per_word"], 1e-9)
    return "high" if ratio > 1.25 or domain["unk_rate"] > 0.005 else "low"


def recommend(train_rows: int, fits_in_memory: dict[str, bool], shift: str = "low", total_parameters: int = 0) -> Recommendation:
    """The seed's decision tree: data size first, then memory, then domain shift and deployment."""
    reasons, suggestions = [], []
    # The seed's tree says few-shot below 100; bench/learning_curve.py measured it still ahead of the frozen probe
    # (+7 and +16 points) and of full fine-tuning at 500 rows on SST-2 and TREC, so the threshold is 500 here.
    if train_rows <= FEWSHOT_MAX_ROWS:
        strategy = "fewshot"
        reasons.append(f"{train_rows} labelled examples (<= {FEWSHOT_MAX_ROWS}): few-shot learning; contrastive pairs teach the"
                       " encoder far more than a head can learn from so few rows")
    elif train_rows < 1_000:
        strategy = "features"
        reasons.append(f"{train_rows} labelled examples ({FEWSHOT_MAX_ROWS + 1}-1,000): feature extraction first; it is cheap"
                       " and hard to overfit")
        suggestions.append("then try --strategy fewshot or lora and keep the one that beats features on validation")
    else:
        strategy = "full"
        band = "1,000-10,000" if train_rows <= 10_000 else "> 10,000"
        reasons.append(f"{train_rows} labelled examples ({band}): enough to fine-tune every weight with the proven defaults")
        if train_rows > 10_000 and shift == "high":
            suggestions.append("the text is far from the model's pre-training domain: run `tunelab adapt` on in-domain text"
                               " first, then fine-tune --model run:<id>")
    if not fits_in_memory.get(strategy, True):
        fallback = next((s for s in ("lora", "features") if fits_in_memory.get(s, True) and s != strategy), None)
        if fallback:
            reasons.append(f"{strategy} would not fit in memory here; {fallback} trains far fewer weights and does")
            strategy = fallback
    if total_parameters > 60_000_000:
        suggestions.append(f"the model has {total_parameters / 1e6:.0f}M parameters: for deployment, distil the result into a"
                           " smaller student (`tunelab distill --teacher <run> --student-layers N`)")
    return Recommendation(strategy, reasons, suggestions)
