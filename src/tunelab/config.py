"""Run configuration: plain dataclasses, loaded from YAML and patched with dotted `key=value` overrides.

Field names follow transformers/peft verbatim (`learning_rate`, `warmup_steps`, `r`, `lora_alpha`)
so a config needs no translation. Unknown keys are errors with a did-you-mean.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tunelab.errors import UserError, did_you_mean
from tunelab.hardware import PRECISIONS

STRATEGIES = ("features", "full", "lora", "fewshot")
TASKS = ("classification", "token-classification", "question-answering", "similarity")
# What each task head is judged by (higher is better); the best checkpoint is chosen on it.
HEADLINE_METRIC = {"classification": "macro_f1", "multi-label": "micro_f1", "regression": "spearman",
                   "token-classification": "f1", "question-answering": "f1", "similarity": "spearman"}
PROBLEM_TYPES = ("single_label", "multi_label", "regression")
# Inputs differ in length by task: SQuAD contexts need long windows, sentences do not.
DEFAULT_MAX_LENGTH = {"classification": 128, "token-classification": 256, "question-answering": 384, "similarity": 128}


@dataclass
class ModelConfig:
    """Which pre-trained model to start from and how to feed it."""

    name_or_path: str = "default"  # "default" = bundled MiniLM; a hub id; a local path; run:<id>
    revision: str | None = None
    tokenizer: str | None = None  # another tokenizer (folder or hub id); None: the model's own
    max_length: int | None = None  # None: the task's default (DEFAULT_MAX_LENGTH)
    pooling: str = "mean"  # features strategy: mean | cls
    attn_implementation: str | None = None  # attention kernel (eager, sdpa, ...); None: the library's default


@dataclass
class DataConfig:
    """Where the labelled data lives and which columns mean what."""

    train: str | None = None
    validation: str | None = None
    test: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    validation_size: float = 0.1  # share of train held out (stratified, seeded) when no validation
    encoding: str = "utf-8"


@dataclass
class TrainConfig:
    """transformers.TrainingArguments knobs; `learning_rate: null` means the strategy's default."""

    learning_rate: float | None = None
    num_train_epochs: float = 3.0
    max_steps: int = -1
    per_device_train_batch_size: int = 16
    per_device_eval_batch_size: int = 64
    gradient_accumulation_steps: int = 1
    warmup_steps: float = 0.1  # < 1 is a fraction of all steps (transformers 5 semantics)
    weight_decay: float = 0.01
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 1.0
    precision: str = "auto"  # auto (bf16 where the hardware has it, fp16 on older GPUs, else fp32) | fp32 | bf16 | fp16
    freeze_embeddings: bool = True  # full: keep the word-embedding matrix fixed (a third of MiniLM): 1.3x faster, no accuracy cost measured
    torch_compile: bool = False  # measured not to pay on CPU for small encoders (bench/RESULTS.md)
    save_steps: int | None = None  # also checkpoint every N steps (for --resume); None: once per epoch
    layerwise_lr_decay: float | None = None  # full: lr x decay**(layers above), e.g. 0.9; less forgetting
    gradual_unfreezing: bool = False  # full: head first, then layers top-down, one stage per epoch (ULMFiT)
    metric_for_best_model: str | None = None  # None: the task's headline metric (macro_f1, f1, spearman, ...)
    early_stopping_patience: int | None = None
    overfit_patience: int = 2  # stop once validation falls while the train/validation loss gap grows this many evaluations in a row; 0: off
    logging_steps: int = 25


@dataclass
class PeftSettings:
    """The PEFT method for the `lora` strategy; `options` go to the peft config class verbatim."""

    method: str = "lora"  # any peft PeftType: lora, ia3, adalora, prompt_tuning, ...
    r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    target_modules: list[str] | None = None  # None: peft's default for the architecture
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FeaturesConfig:
    """Frozen-encoder strategy: embedding batch size, cache, and the small head on top."""

    head: str = "logistic"  # logistic | mlp
    C: float = 1.0
    hidden_size: int = 256
    max_iter: int = 2000
    batch_size: int = 64
    cache: bool = True


@dataclass
class FewshotConfig:
    """SetFit-style few-shot: contrastive pairs per example, epochs over them (train.* sets lr and batch)."""

    iterations: int = 20  # each example gets this many positive and negative partners
    num_train_epochs: float = 1.0


@dataclass
class AdaptConfig:
    """Domain-adaptive pre-training (`tunelab adapt`): the corpus, the probes, the masking."""

    corpus: str | None = None  # .txt (a document per line), a folder of .txt, or a table with text_column
    text_column: str = "text"
    encoding: str = "utf-8"
    general_corpus: str | None = None  # forgetting probe; None: the general-English set shipped with tunelab
    held_out: float = 0.05  # share of corpus documents kept back for the domain probe
    max_probe_blocks: int = 300  # cap on probe size, so probing stays cheap on big corpora
    line_by_line: bool = False  # one example per line instead of concatenated blocks
    mlm_probability: float = 0.15
    whole_word_mask: bool = False
    head_warmup_steps: int = 200  # a new MLM head is fitted this long (encoder frozen) before "before" is measured
    lora: bool = False  # adapt through LoRA (peft.* settings), merged into the weights at the end


@dataclass
class DistillConfig:
    """`tunelab distill`: the teacher run, the student (a model, or the teacher with fewer layers), the loss mix."""

    teacher: str | None = None  # run id of a full or lora run
    student: str | None = None  # a model (hub id, folder, default, run:<id>) with a fresh head
    student_layers: int | None = None  # or: the teacher itself, this many encoder layers kept (evenly spaced)
    temperature: float = 2.0
    alpha: float = 0.5  # weight of the soft-label term; 1 - alpha on the gold labels
    unlabeled: str | None = None  # extra texts (txt, folder, or table with data.text_column): soft labels only


@dataclass
class ClassificationConfig:
    """Options of the classification task: one label, several labels per row, or a number."""

    problem_type: str = "single_label"  # single_label | multi_label | regression
    label_separator: str = ","  # multi_label in CSV/TSV: labels within one cell (JSONL may hold a list)
    threshold: float | None = None  # multi_label decision threshold; None: tuned on validation


@dataclass
class NerConfig:
    """Token classification input: CoNLL columns or JSONL fields, the tag scheme, long-sentence windows."""

    token_column: int = 0  # CoNLL: column index of the word
    tag_column: int = -1  # CoNLL: column index of the tag (-1: last)
    tokens_field: str = "tokens"  # JSONL: field with the word list
    tags_field: str = "tags"  # JSONL: field with the tag list
    tag_scheme: str = "auto"  # auto | iob1 | iob2: IOB1 (and stray I- starts) become IOB2; iob2 rejects them
    stride: int | None = None  # sub-words shared by consecutive windows of a long sentence; None: max_length // 8


@dataclass
class QaConfig:
    """Extractive question answering: context windows and answer search."""

    doc_stride: int = 128  # tokens shared by consecutive windows of a long context
    max_answer_length: int = 30  # in tokens
    n_best: int = 20  # start and end candidates searched per window
    null_threshold: float = 0.0  # SQuAD v2: answer "" when the no-answer score beats the best span by this margin


@dataclass
class SimilarityConfig:
    """Sentence similarity: separate encodings compared by cosine (bi-encoder), or the pair read together."""

    architecture: str = "bi-encoder"  # bi-encoder | cross-encoder
    scale: float = 20.0  # CoSENT: cosine scale (sentence-transformers' default)


@dataclass
class RunConfig:
    """Everything that defines one training run; saved resolved as config.yaml in the run."""

    task: str = "classification"
    strategy: str = "full"
    seed: int = 42
    output_dir: str | None = None
    quiet: bool = False
    force: bool = False  # train despite guardrail errors (learning rate out of range, tokenizer mismatch)
    probe_forgetting: bool = False  # after training, general-English MLM loss of the base vs the tuned encoder
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    peft: PeftSettings = field(default_factory=PeftSettings)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    adapt: AdaptConfig = field(default_factory=AdaptConfig)
    fewshot: FewshotConfig = field(default_factory=FewshotConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    classification: ClassificationConfig = field(default_factory=ClassificationConfig)
    ner: NerConfig = field(default_factory=NerConfig)
    qa: QaConfig = field(default_factory=QaConfig)
    similarity: SimilarityConfig = field(default_factory=SimilarityConfig)

    @property
    def task_kind(self) -> str:
        """The task head that trains: the task, or classification's multi-label / regression variant."""
        if self.task == "classification" and self.classification.problem_type != "single_label":
            return self.classification.problem_type.replace("_", "-")
        return self.task

    def validate(self) -> RunConfig:
        """Check choices that are cheap to check before any data or model is loaded."""
        if self.task not in TASKS:
            raise UserError(f"config task: unknown task {self.task!r}{did_you_mean(self.task, TASKS)}; expected one of {', '.join(TASKS)}")
        if self.classification.problem_type not in PROBLEM_TYPES:
            raise UserError(f"config classification.problem_type: expected one of {', '.join(PROBLEM_TYPES)},"
                            f" got {self.classification.problem_type!r}")
        if self.similarity.architecture not in ("bi-encoder", "cross-encoder"):
            raise UserError(f"config similarity.architecture: expected bi-encoder or cross-encoder, got {self.similarity.architecture!r}")
        if self.ner.tag_scheme not in ("auto", "iob1", "iob2"):
            raise UserError(f"config ner.tag_scheme: expected auto, iob1 or iob2, got {self.ner.tag_scheme!r}")
        if self.model.max_length is None:
            self.model.max_length = DEFAULT_MAX_LENGTH[self.task]
        if self.train.metric_for_best_model is None:
            self.train.metric_for_best_model = HEADLINE_METRIC[self.task_kind]
        if self.task_kind != "classification" and self.strategy in ("fewshot", "distill"):
            raise UserError(f"config strategy: {self.strategy} is for single-label classification; {self.task_kind} trains"
                            " with features, full or lora")
        if self.strategy not in (*STRATEGIES, "auto", "adapt", "distill"):
            raise UserError(
                f"config strategy: unknown strategy {self.strategy!r}{did_you_mean(self.strategy, STRATEGIES)};"
                f" expected one of {', '.join(STRATEGIES)}"
            )
        if self.train.precision not in PRECISIONS:
            raise UserError(f"config train.precision: expected one of {', '.join(PRECISIONS)}, got {self.train.precision!r}")
        if self.strategy == "distill":
            distill = self.distill
            if not distill.teacher:
                raise UserError("config distill.teacher: distillation needs a teacher run (--teacher RUN)")
            if bool(distill.student) == bool(distill.student_layers):
                raise UserError("config distill: give exactly one of distill.student (a model) or distill.student_layers (a number)")
            if distill.temperature <= 0 or not 0.0 <= distill.alpha <= 1.0:
                raise UserError(f"config distill: temperature must be > 0 and alpha in [0, 1], got {distill.temperature}, {distill.alpha}")
        decay = self.train.layerwise_lr_decay
        if decay is not None and not 0.0 < decay <= 1.0:
            raise UserError(f"config train.layerwise_lr_decay: expected a factor in (0, 1], e.g. 0.9, got {decay}")
        for key in ("layerwise_lr_decay", "gradual_unfreezing"):
            if getattr(self.train, key) and self.strategy not in ("full", "auto"):
                raise UserError(f"config train.{key}: applies to full fine-tuning (strategy full), not {self.strategy}")
        if self.model.pooling not in ("mean", "cls"):
            raise UserError(f"config model.pooling: expected mean or cls, got {self.model.pooling!r}")
        if self.features.head not in ("logistic", "mlp"):
            raise UserError(f"config features.head: expected logistic or mlp, got {self.features.head!r}")
        if not 0.0 < self.data.validation_size < 1.0:
            raise UserError(f"config data.validation_size: expected a share between 0 and 1, got {self.data.validation_size}")
        if not 0.0 < self.adapt.held_out < 1.0:
            raise UserError(f"config adapt.held_out: expected a share between 0 and 1, got {self.adapt.held_out}")
        if not 0.0 < self.adapt.mlm_probability < 1.0:
            raise UserError(f"config adapt.mlm_probability: expected a probability, got {self.adapt.mlm_probability}")
        if self.task == "question-answering" and not 0 < self.qa.doc_stride < self.model.max_length // 2:
            raise UserError(f"config qa.doc_stride: expected between 1 and half of model.max_length ({self.model.max_length}),"
                            f" got {self.qa.doc_stride}")
        if self.ner.stride is None:
            self.ner.stride = self.model.max_length // 8
        if self.task == "token-classification" and not 0 <= self.ner.stride < self.model.max_length // 2:
            raise UserError(f"config ner.stride: expected between 0 and half of model.max_length ({self.model.max_length}),"
                            f" got {self.ner.stride}")
        if self.model.max_length < 8:
            raise UserError(f"config model.max_length: expected at least 8 tokens, got {self.model.max_length}")
        return self

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict, ready for YAML or JSON."""
        return dataclasses.asdict(self)


def load_config(path: str | Path | None = None, overrides: list[str] | dict[str, Any] | None = None) -> RunConfig:
    """Build a RunConfig from an optional YAML file, then apply `a.b=value` overrides in order."""
    config = RunConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"{path}: config file not found")
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else str(path)
            raise UserError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(raw, dict):
            raise UserError(f"{path}: expected a mapping of config keys at the top level")
        for key, value in _flatten(raw):
            set_value(config, key, value, source=str(path))
    return apply_overrides(config, overrides)


def apply_overrides(config: RunConfig, overrides: list[str] | dict[str, Any] | None) -> RunConfig:
    """Apply `a.b=value` strings (or a {dotted key: value} dict) in order."""
    items = overrides.items() if isinstance(overrides, dict) else [_split_override(o) for o in overrides or []]
    for key, value in items:
        set_value(config, key, value, source="override")
    return config


def set_value(config: Any, dotted: str, value: Any, source: str = "override") -> None:
    """Set `config.a.b = value`, coercing to the field's declared type; unknown keys are errors."""
    *parents, leaf = dotted.split(".")
    target = config
    for depth, part in enumerate(parents):
        target = _child(target, part, ".".join(parents[: depth + 1]), source)
        if not dataclasses.is_dataclass(target):
            raise UserError(f"{source}: {'.'.join(parents[: depth + 1])} is a value, not a section")
    hints = typing.get_type_hints(type(target))
    if leaf not in hints:
        raise UserError(f"{source}: unknown config key {dotted!r}{did_you_mean(leaf, hints)}")
    if dataclasses.is_dataclass(getattr(target, leaf)):
        if not isinstance(value, dict):
            raise UserError(f"{source}: {dotted} is a section; set one of its keys, e.g. {dotted}.<key>=...")
        for key, sub in _flatten(value):
            set_value(config, f"{dotted}.{key}", sub, source)
        return
    setattr(target, leaf, _coerce(value, hints[leaf], dotted, source))


def _child(target: Any, part: str, path: str, source: str) -> Any:
    names = [f.name for f in dataclasses.fields(target)]
    if part not in names:
        raise UserError(f"{source}: unknown config section {path!r}{did_you_mean(part, names)}")
    return getattr(target, part)


def _split_override(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UserError(f"override {text!r}: expected key=value, e.g. train.learning_rate=3e-5")
    return key.strip(), value


def _flatten(mapping: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested dicts to dotted keys; a dict-typed leaf such as peft.options is kept whole by set_value."""
    out = []
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and key != "options":
            out.extend(_flatten(value, f"{dotted}."))
        else:
            out.append((dotted, value))
    return out


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """Turn a YAML value or a command-line string into the declared type."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        inner = [a for a in args if a is not type(None)]
        hint = inner[0] if len(inner) == 1 else hint
        if value is None or (isinstance(value, str) and value.strip().lower() in ("null", "none", "")):
            return None
    origin = typing.get_origin(hint)
    try:
        if hint is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if hint is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if hint is float:
            return float(value)
        if hint is str:
            if isinstance(value, (dict, list)):
                raise ValueError(value)
            return str(value)
        if origin is list:
            if isinstance(value, str):
                value = [v.strip() for v in value.split(",") if v.strip()]
            return [str(v) for v in value]
        if origin is dict or hint is dict:
            if isinstance(value, str):
                value = yaml.safe_load(value)
            if not isinstance(value, dict):
                raise ValueError(value)
            return dict(value)
    except (TypeError, ValueError):
        expected = getattr(hint, "__name__", str(hint))
        raise UserError(f"{source}: {key} expects {expected}, got {value!r}") from None
    return value
