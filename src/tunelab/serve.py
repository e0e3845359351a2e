"""`tunelab serve`: a REST API over the runs in a store (FastAPI + uvicorn).

`POST /v1/predict` takes a run id and a list of texts (questions with contexts, or text pairs, in
`pairs`); runs are loaded on first use. `/` is a dashboard (tunelab.dashboard). LoRA runs
share one loaded base model (per base and label count) and swap adapters per request; other runs
are kept as their own predictors (a bounded number, least recently used first out). Admin routes
load and unload runs at runtime behind a bearer token, and do not exist without one. Every bad request gets a clear 4xx: unknown run 404,
too many or too long inputs 413, a malformed body 422; run names are checked against the store's
own pattern, so no request can name a path outside it.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name classes local to create_app.

import json
import logging
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import Future
from typing import Any

from tunelab.errors import UserError
from tunelab.registry import RUN_ID, RunStore

log = logging.getLogger("tunelab.serve")


class TaskModels:
    """Loaded task-head runs (NER, QA, similarity, multi-label, regression), least recently used out first."""

    def __init__(self, store: RunStore, size: int) -> None:
        self.store, self.size = store, size
        self.predictors: OrderedDict[str, Any] = OrderedDict()
        self.lock = threading.Lock()

    def records(self, run: Any, texts: list[str], pairs: list[str] | None) -> list[dict[str, Any]]:
        """The task's answer per input, as `tunelab predict` writes it."""
        from tunelab.task_pipeline import load_task_predictor

        with self.lock:  # one pass at a time: the model is not re-entrant under autocast
            predictor = self.predictors.pop(run.id, None) or load_task_predictor(run.path, run.manifest, self.store.root)
            self.predictors[run.id] = predictor
            while len(self.predictors) > self.size:
                self.predictors.popitem(last=False)
            return predictor.records(predictor.task.rows_from_inputs(texts, pairs))


class Limits:
    """Request bounds (inputs per request, characters per input, runs kept in memory) and micro-batching."""

    def __init__(self, max_inputs: int = 256, max_chars: int = 10_000, max_loaded_runs: int = 4,
                 batch_wait_ms: float = 5.0, max_batch_texts: int = 64) -> None:
        self.max_inputs, self.max_chars, self.max_loaded_runs = max_inputs, max_chars, max_loaded_runs
        self.batch_wait_ms, self.max_batch_texts = batch_wait_ms, max_batch_texts


class Models:
    """What the server has loaded: LoRA runs as adapters over one shared base, other runs as their own predictors."""

    def __init__(self, store: RunStore, size: int, onnx: str | None = None) -> None:
        self.store, self.size, self.onnx = store, size, onnx  # onnx: None, "fp32" or "int8"
        self._predictors: OrderedDict[str, Any] = OrderedDict()  # run id -> Predictor, least recently used first
        self._bases: dict[tuple[str, int], Any] = {}  # (base weights, label count) -> PeftModel holding the adapters
        self._adapters: dict[str, tuple[tuple[str, int], Any]] = {}  # run id -> (its base key, its Predictor)
        self._lock = threading.Lock()  # one adapter is active per base at a time

    def loaded(self) -> dict[str, Any]:
        """Run ids loaded, and how many base models hold the adapters."""
        return {"runs": list(self._predictors) + list(self._adapters), "adapters": list(self._adapters),
                "base_models": len(self._bases),
                "onnx": [run_id for run_id, p in self._predictors.items() if type(p).__name__ == "OnnxPredictor"]}

    def _run(self, run_id: str) -> Any:
        run = self.store.get(run_id)  # UserError when there is none
        if run.kind != "run":
            raise UserError(f"run {run_id!r}: a {run.kind}, not a model")
        return run

    def load(self, run_id: str) -> None:
        """Load a run now (an adapter onto its shared base when it is a LoRA-family run)."""
        with self._lock:
            self._load(run_id)

    def _load(self, run_id: str) -> None:
        if run_id in self._predictors or run_id in self._adapters:
            return
        run = self._run(run_id)
        export = run.path / "onnx" / "export.json"
        if self.onnx and export.is_file() and json.loads(export.read_text()).get("exports", {}).get(self.onnx, {}).get("ok"):
            self._predictors[run_id] = self._onnx_predictor(run)
        elif run.manifest.get("strategy") == "lora" and (run.manifest.get("peft_method") or "lora").lower() in ("lora", "ia3"):
            self._load_adapter(run)
            return
        else:
            from tunelab.inference import load_run_predictor

            self._predictors[run_id] = load_run_predictor(run, self.store.root)
        while len(self._predictors) > self.size:
            self._predictors.popitem(last=False)

    def _onnx_predictor(self, run: Any) -> Any:
        """An onnxruntime predictor over the run's export that passed its parity check."""
        from transformers import AutoTokenizer

        from tunelab.export import OnnxPredictor

        folder = run.path / "onnx"
        model = folder / ("model.int8.onnx" if self.onnx == "int8" else "model.onnx")
        return OnnxPredictor(model, AutoTokenizer.from_pretrained(folder), run.manifest["labels"], run.manifest["max_length"])

    def _load_adapter(self, run: Any) -> None:
        from peft import PeftModel
        from transformers import AutoTokenizer

        from tunelab.inference import Predictor, base_model_ref
        from tunelab.models import inference_device, load_classifier

        base_ref = base_model_ref(run.manifest, self.store.root)
        key = (run.manifest["base_model"].get("fingerprint") or base_ref.path, len(run.manifest["labels"]))
        if key not in self._bases:
            model, _ = load_classifier(base_ref, run.manifest["labels"])
            self._bases[key] = PeftModel.from_pretrained(model, run.path / "adapter", adapter_name=run.id).to(inference_device()).eval()
        else:
            self._bases[key].load_adapter(run.path / "adapter", adapter_name=run.id)
        tokenizer = AutoTokenizer.from_pretrained(run.path / "tokenizer")
        self._adapters[run.id] = (key, Predictor(run.manifest, tokenizer, self._bases[key]))

    def unload(self, run_id: str) -> bool:
        """Drop a run (its adapter, or its predictor); False when it was not loaded."""
        with self._lock:
            if run_id in self._predictors:
                del self._predictors[run_id]
                return True
            if run_id not in self._adapters:
                return False
            key, _ = self._adapters.pop(run_id)
            base = self._bases[key]
            if any(k == key for k, _ in self._adapters.values()):
                base.delete_adapter(run_id)
            else:
                del self._bases[key]  # its last adapter: the base goes too
            return True

    def predict(self, run_id: str, texts: list[str], pairs: list[str] | None) -> tuple[list[str], Any]:
        """(labels, probabilities) from the run, loading it first if needed."""
        with self._lock:
            self._load(run_id)
            if run_id in self._adapters:
                key, predictor = self._adapters[run_id]
                self._bases[key].set_adapter(run_id)
                return predictor.labels, predictor.predict_proba(texts, pairs)
            predictor = self._predictors[run_id]
            self._predictors.move_to_end(run_id)
            return predictor.labels, predictor.predict_proba(texts, pairs)


class MicroBatcher:
    """One forward pass for concurrent requests to the same run: waits at most `wait_ms` for company,
    takes at most `max_texts` texts (a single larger request still goes whole); the predictor sorts by length."""

    def __init__(self, models: Models, wait_ms: float, max_texts: int) -> None:
        self.models, self.wait, self.max_texts = models, wait_ms / 1000, max_texts
        self.forward_passes = 0
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="tunelab-batcher", daemon=True)
        self._thread.start()

    def predict(self, run_id: str, texts: list[str], pairs: list[str] | None) -> tuple[list[str], Any]:
        """Queue the request and wait for its share of a batch."""
        done: Future = Future()
        self._queue.put((run_id, texts, pairs, done))
        return done.result()

    def close(self) -> None:
        """Stop the batching thread once the queued work is done."""
        self._queue.put(None)
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while (first := self._queue.get()) is not None:
            jobs, total, deadline, stop = [first], len(first[1]), time.monotonic() + self.wait, False
            while total < self.max_texts and (left := deadline - time.monotonic()) > 0:
                try:
                    job = self._queue.get(timeout=left)
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
                total += len(job[1])
            groups: dict[tuple[str, bool], list] = {}
            for job in jobs:  # one pass per run (and per single-text / pair input shape)
                groups.setdefault((job[0], job[2] is not None), []).append(job)
            for (run_id, paired), group in groups.items():
                self._run(run_id, paired, group)
            if stop:
                return

    def _run(self, run_id: str, paired: bool, group: list) -> None:
        texts = [t for job in group for t in job[1]]
        pairs = [p for job in group for p in job[2]] if paired else None
        try:
            labels, probabilities = self.models.predict(run_id, texts, pairs)
            self.forward_passes += 1
        except Exception as error:  # noqa: BLE001 - every waiting request gets the error
            for job in group:
                job[3].set_exception(error)
            return
        start = 0
        for job in group:
            job[3].set_result((labels, probabilities[start:start + len(job[1])]))
            start += len(job[1])


def create_app(store: RunStore, limits: Limits | None = None, admin_token: str | None = None, onnx: str | None = None) -> Any:
    """The FastAPI application over `store`; admin routes exist only with `admin_token` (env TUNELAB_ADMIN_TOKEN);
    with `onnx` ("fp32" or "int8"), runs whose export of that kind passed its parity check are served by onnxruntime."""
    from fastapi import FastAPI, Header, HTTPException, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    limits = limits or Limits()
    models = Models(store, limits.max_loaded_runs, onnx)
    task_models = TaskModels(store, limits.max_loaded_runs)
    batcher = MicroBatcher(models, limits.batch_wait_ms, limits.max_batch_texts) if limits.batch_wait_ms > 0 else None
    app = FastAPI(title="tunelab", description="Predictions from fine-tuned runs in a tunelab store.")

    class PredictRequest(BaseModel):
        run: str = Field(description="run id in the store")
        inputs: list[str] = Field(description="texts (questions, for question answering)")
        pairs: list[str] | None = Field(default=None, description="second texts: sentence pairs, similarity, QA contexts")

    @app.middleware("http")
    async def access_log(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        log.info(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "method": request.method,
                             "path": request.url.path, "status": response.status_code,
                             "ms": round(1000 * (time.perf_counter() - started), 2),
                             "client": request.client.host if request.client else None}))
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "store": str(store.root), "loaded": models.loaded(),
                "micro_batching": {"wait_ms": limits.batch_wait_ms, "forward_passes": batcher.forward_passes} if batcher else None}

    @app.get("/v1/runs")
    def runs() -> list[dict[str, Any]]:
        return [{"id": r.id, "strategy": r.manifest.get("strategy"), "labels": r.manifest.get("labels"),
                 "metrics": r.manifest.get("metrics", {}).get("validation")} for r in store.list() if r.kind == "run"]

    @app.post("/v1/predict")
    def predict(body: PredictRequest) -> dict[str, Any]:
        if not RUN_ID.match(body.run):
            raise HTTPException(404, f"run {body.run!r}: not a run name")
        if not body.inputs:
            raise HTTPException(422, "inputs: give at least one text")
        if len(body.inputs) > limits.max_inputs:
            raise HTTPException(413, f"inputs: {len(body.inputs)} texts, at most {limits.max_inputs} per request")
        longest = max(len(t) for t in body.inputs + (body.pairs or []))
        if longest > limits.max_chars:
            raise HTTPException(413, f"inputs: a text of {longest} characters, at most {limits.max_chars}")
        if body.pairs is not None and len(body.pairs) != len(body.inputs):
            raise HTTPException(422, f"pairs: {len(body.pairs)} second texts for {len(body.inputs)} inputs")
        try:
            run = store.get(body.run)
        except UserError as error:
            raise HTTPException(404, str(error)) from None
        if run.manifest.get("task_kind", "classification") != "classification":
            try:
                return {"run": body.run, "task": run.manifest["task_kind"],
                        "predictions": task_models.records(run, body.inputs, body.pairs)}
            except UserError as error:
                raise HTTPException(422, str(error)) from None
        try:
            labels, probabilities = (batcher or models).predict(body.run, body.inputs, body.pairs)
        except UserError as error:
            raise HTTPException(404, str(error)) from None
        return {"run": body.run, "predictions": [
            {"label": labels[int(row.argmax())], "score": float(row.max()),
             "probabilities": {label: float(p) for label, p in zip(labels, row, strict=True)}} for row in probabilities]}

    if admin_token:
        def authorised(authorization: str | None) -> None:
            if authorization != f"Bearer {admin_token}":
                raise HTTPException(401, "admin: a valid bearer token is required")

        @app.post("/admin/runs/{run_id}/load")
        def admin_load(run_id: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
            authorised(authorization)
            if not RUN_ID.match(run_id):
                raise HTTPException(404, f"run {run_id!r}: not a run name")
            try:
                models.load(run_id)
            except UserError as error:
                raise HTTPException(404, str(error)) from None
            return {"loaded": models.loaded()}

        @app.delete("/admin/runs/{run_id}")
        def admin_unload(run_id: str, authorization: str | None = Header(default=None)) -> dict[str, Any]:
            authorised(authorization)
            if not models.unload(run_id):
                raise HTTPException(404, f"run {run_id!r}: not loaded")
            return {"loaded": models.loaded()}

    from tunelab.dashboard import add_dashboard

    add_dashboard(app, store, admin=bool(admin_token))

    @app.on_event("shutdown")
    def stop_batching() -> None:
        if batcher:
            batcher.close()

    @app.exception_handler(HTTPException)
    async def one_line(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    return app


def serve(store: RunStore, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None,
          onnx: str | None = None) -> None:
    """Run the API with uvicorn until interrupted (SIGINT/SIGTERM shut it down gracefully)."""
    import os

    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(message)s")  # one JSON object per request
    uvicorn.run(create_app(store, limits, os.environ.get("TUNELAB_ADMIN_TOKEN") or None, onnx), host=host, port=port,
                log_level="warning")
