"""`tunelab push` / `tunelab pull`: a run to and from the Hugging Face Hub, with a generated model card.

What goes up is the run's own folder (weights or adapter, tokenizer, run.json, metrics.json,
config.yaml) plus a README.md model card; a pulled repository that holds a run.json lands in the
store as a normal run. Repositories are private unless asked otherwise; the token comes from the
environment (HF_TOKEN, or huggingface_hub's own login), never from a flag.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from tunelab.errors import UserError
from tunelab.registry import MANIFEST, RUN_ID, Run, RunStore

# Files of a run that a model repository carries; evaluations/ and exports stay local.
SHIPPED = ("model", "adapter", "tokenizer", "head", MANIFEST, "metrics.json", "config.yaml")


def _metric_lines(manifest: dict[str, Any]) -> list[str]:
    lines = []
    for split, scores in manifest.get("metrics", {}).items():
        for name, value in scores.items():
            if isinstance(value, int | float):
                lines.append(f"| {split} | {name} | {value:.4f} |")
    return lines


USES = {"classification": "Classifying texts like the training data into the labels above.",
        "multi-label": "Tagging texts like the training data with any of the labels above.",
        "regression": "Scoring texts like the training data on the same numeric scale.",
        "token-classification": "Finding the entity types above in text like the training data.",
        "question-answering": "Answering questions by extracting a span of a given context.",
        "similarity": "Scoring how similar two texts are (and, for a bi-encoder, embedding texts for search)."}


def model_card(run: Run) -> str:
    """README.md for the repository: base model, strategy, data, metrics, intended use, limitations."""
    m = run.manifest
    base = m.get("base_model", {}).get("given", "unknown")
    data = m.get("data", {})
    train = data.get("train", {})
    labels = m.get("labels") or []
    library = "peft" if m.get("strategy") == "lora" else "transformers"
    kind = m.get("task_kind", m.get("task", "classification"))
    front = ["---", f"library_name: {library}", "tags:", "- tunelab", f"- {m.get('strategy', 'run')}", f"- {kind}", "---", ""]
    body = [
        f"# {run.id}",
        "",
        f"A `{kind}` model trained with [tunelab](https://pypi.org/project/tunelab/)"
        f" by the `{m.get('strategy')}` strategy on top of `{base}`.",
        "",
        "## Training",
        "",
        f"- base model: `{base}` (weights sha256 prefix `{m.get('base_model', {}).get('fingerprint') or 'n/a'}`)",
        f"- strategy: `{m.get('strategy')}`" + (f" ({m['peft_method']})" if m.get("peft_method") else ""),
        f"- precision: {m.get('precision', 'fp32')}, seed {m.get('seed')}, max length {m.get('max_length')} tokens",
        f"- training data: `{Path(str(train.get('source'))).name}`, {train.get('rows', '?')} rows"
        f" (sha256 {str(train.get('sha256') or 'n/a')[:12]}); validation: {data.get('validation', {}).get('rows', '?')} rows",
        f"- labels ({len(labels)}): {', '.join(map(str, labels))}",
        f"- trainable parameters: {m.get('trainable_params', 0):,} of {m.get('total_params', 0):,};"
        f" training took {m.get('train_seconds', 0):.0f} s",
        "",
        "## Metrics",
        "",
        "| split | metric | value |",
        "|---|---|---|",
        *_metric_lines(m),
        "",
        "## Intended use",
        "",
        f"{USES.get(kind, USES['classification'])} Load it with"
        f" `tunelab pull <repo>` then `tunelab predict {run.id} --input texts.csv --output predictions.jsonl`"
        + (", or as a plain transformers model from `model/`." if m.get("strategy") in ("full", "distill") else "."),
        "",
        "## Limitations",
        "",
        "- Scores are on the validation split above; text from another domain, period or style may score lower.",
        "- The model inherits the biases of its base model and of its training data.",
        f"- Inputs are truncated at {m.get('max_length')} tokens.",
    ]
    if m.get("strategy") in ("lora", "features"):
        body.append(f"- This repository holds the {'adapter' if m['strategy'] == 'lora' else 'head'} only: the base model"
                    f" `{base}` must be available where it is loaded.")
    return "\n".join(front + body) + "\n"


def stage(run: Run, target: Path) -> Path:
    """The folder that would be uploaded: the run's shipped files and the model card."""
    target.mkdir(parents=True, exist_ok=True)
    for name in SHIPPED:
        source = run.path / name
        if source.is_dir():
            shutil.copytree(source, target / name)
        elif source.is_file():
            shutil.copy2(source, target / name)
    (target / "README.md").write_text(model_card(run), encoding="utf-8")
    return target


def _hub_error(action: str, repo_id: str, error: Exception) -> UserError:
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled, RepositoryNotFoundError

    if isinstance(error, OfflineModeIsEnabled):
        return UserError(f"{action} {repo_id}: the Hugging Face Hub is switched off here (HF_HUB_OFFLINE=1); nothing was sent")
    if isinstance(error, RepositoryNotFoundError):
        return UserError(f"{action} {repo_id}: repository not found, or not visible with the token in HF_TOKEN")
    if isinstance(error, HfHubHTTPError) and getattr(error.response, "status_code", None) in (401, 403):
        return UserError(f"{action} {repo_id}: the hub refused the token (set HF_TOKEN to a token with write access)")
    return UserError(f"{action} {repo_id}: the Hugging Face Hub could not be reached ({type(error).__name__}); nothing was changed")


def push(run_id: str, repo_id: str, store: RunStore, public: bool = False) -> str:
    """Create the repository (private unless `public`) and upload the staged run; returns its URL."""
    from huggingface_hub import HfApi

    run = store.get(run_id)
    if run.kind != "run":
        raise UserError(f"run {run.id}: a {run.kind} has no model to push")
    if "/" not in repo_id:
        raise UserError(f"--repo-id {repo_id!r}: expected <user or organisation>/<name>")
    api = HfApi(token=os.environ.get("HF_TOKEN") or None)
    with tempfile.TemporaryDirectory(prefix="tunelab-push-") as folder:
        staged = stage(run, Path(folder) / run.id)
        try:
            url = api.create_repo(repo_id, private=not public, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=staged, commit_message=f"tunelab run {run.id}")
        except Exception as error:  # noqa: BLE001 - every hub failure becomes one clear line
            raise _hub_error("push", repo_id, error) from None
    return str(url)


def pull(repo_id: str, store: RunStore, revision: str | None = None) -> Run:
    """Download a repository pushed by tunelab into the store, as a run named after its run.json."""
    from huggingface_hub import snapshot_download

    # Hidden (a leading dot) so that `runs list` never mistakes the half-downloaded folder for a run.
    with tempfile.TemporaryDirectory(prefix=".tunelab-pull-", dir=store.root if store.root.is_dir() else None) as folder:
        try:
            local = Path(snapshot_download(repo_id, revision=revision, local_dir=folder,
                                           token=os.environ.get("HF_TOKEN") or None))
        except Exception as error:  # noqa: BLE001
            raise _hub_error("pull", repo_id, error) from None
        manifest_file = local / MANIFEST
        if not manifest_file.is_file():
            raise UserError(f"pull {repo_id}: no {MANIFEST} in the repository; only runs pushed by tunelab can be pulled")
        run_id = json.loads(manifest_file.read_text())["id"]
        if not RUN_ID.match(run_id):
            raise UserError(f"pull {repo_id}: run id {run_id!r} in {MANIFEST} is not a valid name")
        with store.writing(str(store.root / run_id), "pulled") as draft:
            for item in local.iterdir():
                if item.name != ".cache":
                    shutil.move(str(item), draft.path / item.name)
    return store.get(run_id)
