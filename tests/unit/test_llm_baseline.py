"""The optional LLM baseline against a fake OpenAI-compatible server on loopback."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from tunelab import llm_baseline
from tunelab.config import DataConfig
from tunelab.tasks.classification import load_data


class FakeChat(BaseHTTPRequestHandler):
    """Answers 'pos' when the last user message has a positive word, 'neg' otherwise, and once with chatter."""

    requests: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.requests.append(body)
        text = body["messages"][-1]["content"]
        answer = "pos" if any(w in text for w in ("great", "wonderful", "excellent", "lovely", "superb", "delightful",
                                                  "fantastic", "brilliant")) else "The label is: neg."
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture()
def fake_endpoint(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), FakeChat)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("TUNELAB_LLM_BASE_URL", f"http://127.0.0.1:{server.server_port}/v1")
    monkeypatch.setenv("TUNELAB_LLM_MODEL", "fake")
    yield
    server.shutdown()


def test_scores_the_prompted_llm_on_validation(fake_endpoint, sentiment_files):
    train, dev = sentiment_files
    data = load_data(DataConfig(train=str(train), validation=str(dev)), seed=0)
    result = llm_baseline.score(data, shots_per_class=2, limit=10)
    assert result["rows"] == 10 and result["accuracy"] == 1.0 and result["unparsed_answers"] == 0
    request = FakeChat.requests[-1]
    assert request["temperature"] == 0 and request["model"] == "fake"
    assert len(request["messages"]) == 1 + 2 * 4 + 1  # system, 4 shots as user/assistant pairs, the question


def test_unreachable_endpoint_is_reported_not_raised(monkeypatch, sentiment_files):
    monkeypatch.setenv("TUNELAB_LLM_BASE_URL", "http://127.0.0.1:9/v1")  # discard port: nothing listens
    train, dev = sentiment_files
    result = llm_baseline.score(load_data(DataConfig(train=str(train), validation=str(dev)), seed=0), limit=2)
    assert "error" in result and "127.0.0.1:9" in result["error"]


def test_parse_label():
    labels = ["neg", "pos", "very pos"]
    assert llm_baseline.parse_label(" Pos.", labels) == 1
    assert llm_baseline.parse_label("I think: very pos", labels) == 2
    assert llm_baseline.parse_label("no idea", labels) is None
