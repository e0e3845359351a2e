"""`tunelab serve`: a REST API over the runs in a store (FastAPI + uvicorn).

`POST /v1/predict` takes a run id and a list of texts; runs are loaded on first use and kept (a
bounded number, least recently used first out). Every bad request gets a clear 4xx: unknown run 404,
too many or too long inputs 413, a malformed body 422; run names are checked against the store's
own pattern, so no request can name a path outside it.
"""

# No `from __future__ import annotations`: FastAPI reads the route signatures, which name classes local to create_app.

import logging
import threading
import time
from collections import OrderedDict
from typing import Any

from tunelab.errors import UserError
from tunelab.registry import RUN_ID, RunStore

log = logging.getLogger("tunelab.serve")


class Limits:
    """Request bounds: inputs per request, characters per input, runs kept in memory."""

    def __init__(self, max_inputs: int = 256, max_chars: int = 10_000, max_loaded_runs: int = 4) -> None:
        self.max_inputs, self.max_chars, self.max_loaded_runs = max_inputs, max_chars, max_loaded_runs


class RunCache:
    """Predictors by run id, loaded once, least recently used dropped beyond `size`."""

    def __init__(self, store: RunStore, size: int) -> None:
        self.store, self.size = store, size
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, run_id: str) -> Any:
        from tunelab.inference import load_run_predictor

        with self._lock:
            if run_id in self._loaded:
                self._loaded.move_to_end(run_id)
                return self._loaded[run_id]
            run = self.store.get(run_id)  # UserError when there is none
            if run.kind != "run":
                raise UserError(f"run {run_id!r}: a {run.kind}, not a model")
            predictor = load_run_predictor(run, self.store.root)
            self._loaded[run_id] = predictor
            while len(self._loaded) > self.size:
                self._loaded.popitem(last=False)
            return predictor


def create_app(store: RunStore, limits: Limits | None = None) -> Any:
    """The FastAPI application over `store`."""
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, Field

    limits = limits or Limits()
    cache = RunCache(store, limits.max_loaded_runs)
    app = FastAPI(title="tunelab", description="Predictions from fine-tuned runs in a tunelab store.")

    class PredictRequest(BaseModel):
        run: str = Field(description="run id in the store")
        inputs: list[str] = Field(description="texts to classify")
        pairs: list[str] | None = Field(default=None, description="second texts, for sentence-pair runs")

    @app.middleware("http")
    async def access_log(request: Request, call_next: Any) -> Any:
        started = time.perf_counter()
        response = await call_next(request)
        log.info("%s %s %d %.1fms", request.method, request.url.path, response.status_code, 1000 * (time.perf_counter() - started))
        return response

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok", "store": str(store.root), "loaded_runs": list(cache._loaded)}

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
            predictor = cache.get(body.run)
        except UserError as error:
            raise HTTPException(404, str(error)) from None
        probabilities = predictor.predict_proba(body.inputs, body.pairs)
        labels = predictor.labels
        return {"run": body.run, "predictions": [
            {"label": labels[int(row.argmax())], "score": float(row.max()),
             "probabilities": {label: float(p) for label, p in zip(labels, row, strict=True)}} for row in probabilities]}

    @app.exception_handler(HTTPException)
    async def one_line(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": error.detail}, status_code=error.status_code)

    return app


def serve(store: RunStore, host: str = "127.0.0.1", port: int = 8000, limits: Limits | None = None) -> None:
    """Run the API with uvicorn until interrupted (SIGINT/SIGTERM shut it down gracefully)."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    uvicorn.run(create_app(store, limits), host=host, port=port, log_level="warning")
