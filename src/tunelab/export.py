"""`tunelab export`: a run as ONNX (LoRA merged first), optionally int8-quantised, with a parity check.

The export is only called good when it agrees with PyTorch on a validation sample: the largest
logit difference is small and the metric is the same. Otherwise the files stay for inspection, the
report says `ok: false`, and the command fails.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunelab.errors import UserError
from tunelab.registry import Run, RunStore, write_json

# fp32 ONNX must reproduce PyTorch to float noise; int8 may move logits but not the metric by much.
MAX_LOGIT_DIFFERENCE = {"fp32": 1e-3, "int8": None}
MAX_ACCURACY_DROP = {"fp32": 0.0, "int8": 0.01}
EXPORTABLE = ("full", "lora", "distill")


def _onnx_modules() -> tuple[Any, Any]:
    try:
        import onnx
        import onnxruntime
    except ImportError:
        raise UserError("export needs onnx and onnxruntime: pip install 'tunelab[export]'") from None
    return onnx, onnxruntime


class OnnxPredictor:
    """Class probabilities from an exported model.onnx (or model.int8.onnx) and its tokenizer."""

    def __init__(self, model_file: Path, tokenizer: Any, labels: list[str], max_length: int, threads: int | None = None) -> None:
        _, onnxruntime = _onnx_modules()
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(model_file), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.tokenizer, self.labels, self.max_length = tokenizer, labels, max_length

    def logits(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 32) -> np.ndarray:
        """[n, num_labels] logits in input order; batches sorted by length."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            batch = self.tokenizer([texts[i] for i in rows], [pairs[i] for i in rows] if pairs else None, truncation=True,
                                   max_length=self.max_length, padding=True, return_tensors="np")
            out[rows] = self.session.run(["logits"], {name: batch[name].astype(np.int64) for name in self.inputs})[0]
        return out

    def predict_proba(self, texts: Sequence[str], pairs: Sequence[str] | None = None, batch_size: int = 32) -> np.ndarray:
        """Softmax of the logits."""
        logits = self.logits(texts, pairs, batch_size)
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)


def _export_onnx(model: Any, tokenizer: Any, target: Path) -> list[str]:
    """TorchScript-trace export with dynamic batch and sequence axes; returns the input names."""
    import torch

    sample = tokenizer(["an example", "a second, longer example text"], padding=True, return_tensors="pt")
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Logits(torch.nn.Module):  # positional inputs in a fixed order, one named output
        def __init__(self, wrapped: Any) -> None:
            super().__init__()
            self.wrapped = wrapped

        def forward(self, *inputs: Any) -> Any:
            return self.wrapped(**dict(zip(names, inputs, strict=True))).logits

    # SDPA's mask handling is Python control flow that tracing would freeze to the sample's case; eager attention
    # traces into one graph that holds for every batch shape and padding.
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {"logits": {0: "batch"}}
    # The exporter puts modules back in the mode it found them in: a wrapper left in training mode would
    # switch the model's dropout on for everything after the export (the parity check caught exactly that).
    wrapper = Logits(model.float()).eval()
    with torch.inference_mode():
        torch.onnx.export(wrapper, tuple(sample[n] for n in names), str(target), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
    model.eval()
    return names


class ExportDisagrees(UserError):
    """The export was written but does not reproduce PyTorch: not a usage error, still a failure."""

    exit_code = 1

    def __init__(self, message: str, report: dict[str, Any]) -> None:
        super().__init__(message)
        self.report = report


def export(run_id: str, store: RunStore, output: str | None = None, quantize: bool = False, data: str | None = None,
           rows: int = 500) -> dict[str, Any]:
    """Export a run (default folder: <run>/onnx) and check it on `rows` validation rows (the run's own, or `data`)."""
    from tunelab.inference import load_run_predictor

    run = store.get(run_id)
    kind = run.manifest.get("task_kind", "classification")
    if kind != "classification":
        raise UserError(f"run {run.id}: ONNX export covers single-label classification runs; this is a {kind} run"
                        " (serve it with `tunelab serve`)")
    examples = parity_examples(run, data, rows)
    report = export_run(run, load_run_predictor(run, store.root), examples, Path(output) if output else run.path / "onnx", quantize)
    if not report["ok"]:
        raise ExportDisagrees(f"run {run.id}: the ONNX export disagrees with PyTorch (see {report['folder']}/export.json);"
                              " it is not fit to serve", report)
    return report


def parity_examples(run: Run, data: str | None, rows: int) -> Any:
    """A seeded sample of labelled rows: from `data`, else the run's own validation split rebuilt from its config."""
    from tunelab.config import load_config
    from tunelab.pipeline import run_data_config
    from tunelab.tasks.classification import load_data, read_examples

    if data:
        examples, _ = read_examples(data, run_data_config(run, {}), run.manifest["labels"], "test")
    else:
        try:
            config = load_config(run.path / "config.yaml")
            examples = load_data(config.data, config.seed).validation
        except UserError as error:
            raise UserError(f"run {run.id}: its validation data cannot be read again ({error}); pass --data FILE") from None
    if len(examples) > rows:
        examples = examples.select(np.sort(np.random.default_rng(0).choice(len(examples), rows, replace=False)))
    return examples


def export_run(run: Run, predictor: Any, examples: Any, output: Path, quantize: bool) -> dict[str, Any]:
    """Write model.onnx (+ model.int8.onnx), the tokenizer and export.json to `output`; parity against `predictor`."""
    if run.manifest.get("strategy") not in EXPORTABLE:
        raise UserError(f"run {run.id}: export covers {', '.join(EXPORTABLE)} runs (a classifier network);"
                        f" this is a {run.manifest.get('strategy')} run")
    _onnx_modules()
    if output.exists():
        shutil.rmtree(output)
    output.mkdir(parents=True)
    started = time.perf_counter()
    inputs = _export_onnx(predictor.model, predictor.tokenizer, output / "model.onnx")
    predictor.tokenizer.save_pretrained(output)
    files = {"fp32": output / "model.onnx"}
    if quantize:
        from onnxruntime.quantization import QuantType, quantize_dynamic

        # Per-channel scales: per-tensor int8 cost MiniLM 2.4 points on SST-2, per-channel 0.2 (bench/RESULTS.md).
        quantize_dynamic(str(files["fp32"]), str(output / "model.int8.onnx"), weight_type=QuantType.QInt8, per_channel=True)
        files["int8"] = output / "model.int8.onnx"
    predictor.precision = "fp32"  # parity is against the very fp32 network that was exported
    torch_logits = predictor.logits(examples.texts, examples.pairs, batch_size=32)
    torch_accuracy = float((torch_logits.argmax(axis=1) == examples.labels).mean())
    report: dict[str, Any] = {"run": run.id, "folder": str(output), "labels": run.manifest["labels"],
                              "max_length": run.manifest["max_length"], "inputs": inputs, "rows_checked": len(examples),
                              "pytorch_accuracy": round(torch_accuracy, 4),
                              "exports": {}, "seconds": 0.0}
    for kind, path in files.items():
        onnx_logits = OnnxPredictor(path, predictor.tokenizer, run.manifest["labels"], run.manifest["max_length"]).logits(
            examples.texts, examples.pairs)
        difference = float(np.abs(onnx_logits - torch_logits).max())
        accuracy = float((onnx_logits.argmax(axis=1) == examples.labels).mean())
        limit = MAX_LOGIT_DIFFERENCE[kind]
        ok = (limit is None or difference <= limit) and torch_accuracy - accuracy <= MAX_ACCURACY_DROP[kind] + 1e-9
        agreement = float((onnx_logits.argmax(axis=1) == torch_logits.argmax(axis=1)).mean())
        report["exports"][kind] = {"file": path.name, "bytes": path.stat().st_size, "max_abs_logit_difference": difference,
                                   "accuracy": round(accuracy, 4), "agreement": agreement, "ok": ok}
    report["ok"] = all(e["ok"] for e in report["exports"].values())
    report["seconds"] = round(time.perf_counter() - started, 2)
    write_json(output / "export.json", report)
    return report


def render(report: dict[str, Any]) -> str:
    """The parity table printed after every export."""
    lines = [f"parity on {report['rows_checked']} validation rows (PyTorch fp32 accuracy {report['pytorch_accuracy']:.4f}):",
             "| export | size | max logit difference | accuracy | agreement with PyTorch | verdict |", "|---|---|---|---|---|---|"]
    for e in report["exports"].values():
        lines.append(f"| {e['file']} | {e['bytes'] / 2**20:.1f} MB | {e['max_abs_logit_difference']:.2e} | {e['accuracy']:.4f}"
                     f" | {e['agreement']:.2%} | {'good' if e['ok'] else 'DISAGREES'} |")
    return "\n".join(lines)
