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


@pytest.fixture()
def server(tiny_model, sentiment_files, tmp_path):
    import uvicorn

    from tunelab.serve import Limits, create_app

    train_file, dev_file = sentiment_files
    store = RunStore(tmp_path / "runs")
    run = train(tiny_config(tiny_model, train_file, dev_file, "full", tmp_path, output_dir=str(tmp_path / "runs" / "sentiment")),
                store)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app_server = uvicorn.Server(uvicorn.Config(create_app(store, Limits(max_inputs=4, max_chars=200)), host="127.0.0.1",
                                               port=port, log_level="warning"))
    thread = threading.Thread(target=app_server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not app_server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", run, store
    app_server.should_exit = True  # graceful shutdown
    thread.join(timeout=10)
    assert not thread.is_alive()


def _call(url: str, body: bytes | None = None) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
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
    assert status == 200 and health["loaded_runs"] == ["sentiment"]
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
