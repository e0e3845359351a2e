"""tunelab serve over real HTTP on loopback: predictions, the run list, health, and every error answer."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import tiny_config
from tunelab.inference import load_run_predictor
from tunelab.pipeline import train
from tunelab.registry import RunStore

pytest.importorskip("fastapi")


def _start(app):
    import uvicorn

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=app_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not app_server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", app_server, thread


def _stop(app_server, thread) -> None:
    app_server.should_exit = True  # graceful shutdown
    thread.join(timeout=10)
    assert not thread.is_alive()


@pytest.fixture()
def server(tiny_model, sentiment_files, tmp_path):
    from tunelab.serve import Limits, create_app

    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, output_dir=str(tmp_path / "runs" / "sentiment")),
                store)
    base, app_server, thread = _start(create_app(store, Limits(max_inputs=4, max_chars=200)))
    yield base, run, store
    _stop(app_server, thread)


def _call(url: str, body: bytes | None = None, method: str | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_predict_matches_the_run_and_lists_runs(server):
    base, run, store = server
    texts = ["the film was great", "the meal was awful"]
    status, answer = _call(f"{base}/v1/predict", json.dumps({"run": "sentiment", "inputs": texts}).encode())
    assert status == 200 and len(answer["predictions"]) == 2
    expected = load_run_predictor(run, store.root).predict_proba(texts)
    for row, prediction in zip(expected, answer["predictions"], strict=True):
        assert prediction["label"] == run.manifest["labels"][int(row.argmax())]
        assert prediction["probabilities"]["pos"] == pytest.approx(float(row[run.manifest["labels"].index("pos")]), abs=1e-6)
    assert _call(f"{base}/v1/runs")[1][0]["id"] == "sentiment"
    status, health = _call(f"{base}/healthz")
    assert status == 200 and health["loaded"]["runs"] == ["sentiment"]
    assert _call(f"{base}/openapi.json")[0] == 200


@pytest.mark.parametrize("body, status, message", [
    ({"run": "nope", "inputs": ["x"]}, 404, "not found"),
    ({"run": "../../etc/passwd", "inputs": ["x"]}, 404, "not a run name"),
    ({"run": "sentiment", "inputs": ["x"] * 5}, 413, "at most 4"),
    ({"run": "sentiment", "inputs": ["x" * 201]}, 413, "at most 200"),
    ({"run": "sentiment", "inputs": []}, 422, "at least one"),
    ({"run": "sentiment", "inputs": "not a list"}, 422, None),
    ({"run": "sentiment", "inputs": ["a", "b"], "pairs": ["c"]}, 422, "second texts"),
])
def test_bad_requests_get_clear_4xx(server, body, status, message):
    base, _, _ = server
    code, answer = _call(f"{base}/v1/predict", json.dumps(body).encode())
    assert code == status
    if message:
        assert message in answer["error"]


def test_malformed_json_is_a_422(server):
    base, _, _ = server
    code, answer = _call(f"{base}/v1/predict", b"{not json")
    assert code == 422 and "detail" in answer


def test_lora_runs_share_one_base_and_swap_adapters_per_request(tiny_model, sentiment_files, tmp_path):
    from tunelab.serve import create_app

    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    runs = [train(tiny_config(tiny_model, train_file, dev_file, "lora", tmp_path, seed=seed, output_dir=str(tmp_path / "runs" / name),
                              **{"train.learning_rate": 5e-3}), store) for seed, name in ((1, "first"), (2, "second"))]
    base, app_server, thread = _start(create_app(store, admin_token="s3cret"))
    try:
        texts = ["the film was great", "the meal was awful number 3"]
        answers = {}
        for name in ("first", "second", "first"):  # swap there and back
            status, answer = _call(f"{base}/v1/predict", json.dumps({"run": name, "inputs": texts}).encode())
            assert status == 200
            answers.setdefault(name, []).append([p["probabilities"]["pos"] for p in answer["predictions"]])
        for run in runs:  # each adapter answers as its own run does (merged there, unmerged here: bf16 rounding apart)
            expected = load_run_predictor(run, store.root).predict_proba(texts)[:, run.manifest["labels"].index("pos")]
            assert answers[run.id][0] == pytest.approx(expected.tolist(), abs=1e-3)
        assert answers["first"][0] == answers["first"][1]
        gap = max(abs(a - b) for a, b in zip(answers["first"][0], answers["second"][0], strict=True))
        assert gap > 5e-3  # the adapters differ well beyond the tolerance above, so a swapped answer would fail
        loaded = _call(f"{base}/healthz")[1]["loaded"]
        assert sorted(loaded["adapters"]) == ["first", "second"] and loaded["base_models"] == 1

        assert _call(f"{base}/admin/runs/second", method="DELETE")[0] == 401  # no token
        assert _call(f"{base}/admin/runs/second", method="DELETE", token="wrong")[0] == 401
        status, answer = _call(f"{base}/admin/runs/second", method="DELETE", token="s3cret")
        assert status == 200 and answer["loaded"]["adapters"] == ["first"]
        status, answer = _call(f"{base}/admin/runs/second/load", b"", method="POST", token="s3cret")
        assert status == 200 and sorted(answer["loaded"]["adapters"]) == ["first", "second"]
        assert _call(f"{base}/admin/runs/nope/load", b"", method="POST", token="s3cret")[0] == 404
    finally:
        _stop(app_server, thread)


def test_admin_routes_do_not_exist_without_a_token(server):
    base, _, _ = server
    assert _call(f"{base}/admin/runs/sentiment", method="DELETE", token="anything")[0] == 404


@pytest.mark.parametrize("wait_ms", [300.0, 0.0])
def test_concurrent_requests_share_forward_passes(tiny_model, sentiment_files, tmp_path, wait_ms):
    from concurrent.futures import ThreadPoolExecutor

    from tunelab.serve import Limits, create_app

    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, output_dir=str(tmp_path / "runs" / "m")), store)
    base, app_server, thread = _start(create_app(store, Limits(batch_wait_ms=wait_ms)))
    try:
        texts = [f"the film number {i} was {'great' if i % 2 else 'awful'}" for i in range(8)]
        _call(f"{base}/v1/predict", json.dumps({"run": "m", "inputs": ["warm up"]}).encode())  # load the run first
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda t: _call(f"{base}/v1/predict", json.dumps({"run": "m", "inputs": [t]}).encode()), texts))
        expected = load_run_predictor(run, store.root).predict_proba(texts)
        for (status, answer), row in zip(answers, expected, strict=True):  # each request gets its own rows back
            assert status == 200 and answer["predictions"][0]["score"] == pytest.approx(float(row.max()), abs=1e-3)
        batching = _call(f"{base}/healthz")[1]["micro_batching"]
        if wait_ms:
            assert batching["forward_passes"] < 1 + len(texts)  # concurrent requests shared passes
        else:
            assert batching is None
    finally:
        _stop(app_server, thread)


def test_a_passing_onnx_export_is_served_by_onnxruntime_and_requests_are_logged(tiny_model, sentiment_files, tmp_path, caplog):
    pytest.importorskip("onnxruntime")
    import logging

    from tunelab.export import export
    from tunelab.serve import Limits, create_app

    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, output_dir=str(tmp_path / "runs" / "m")), store)
    assert export("m", store)["ok"]
    base, app_server, thread = _start(create_app(store, Limits(batch_wait_ms=0), onnx="fp32"))
    try:
        texts = ["the film was great", "the meal was awful"]
        with caplog.at_level(logging.INFO, logger="tunelab.serve"):
            status, answer = _call(f"{base}/v1/predict", json.dumps({"run": "m", "inputs": texts}).encode())
        assert status == 200 and _call(f"{base}/healthz")[1]["loaded"]["onnx"] == ["m"]
        predictor = load_run_predictor(run, store.root)
        predictor.precision = "fp32"  # the export is the fp32 network
        expected = predictor.predict_proba(texts)
        assert [p["score"] for p in answer["predictions"]] == pytest.approx(expected.max(axis=1).tolist(), abs=1e-5)
        lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "tunelab.serve"]
        assert any(line["path"] == "/v1/predict" and line["status"] == 200 and line["ms"] >= 0 for line in lines)
    finally:
        _stop(app_server, thread)
