"""The dashboard of `tunelab serve` in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium),
and task-head runs over POST /v1/predict."""

from __future__ import annotations

import json
import shutil
import urllib.request

import numpy as np
import pytest

from tests.conftest import make_rows, tiny_config, write_csv
from tests.task_data import write_conll, write_squad
from tests.unit.test_serve import _call, _start, _stop

pytest.importorskip("fastapi")
CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def live(tiny_model, tmp_path_factory):
    """A store with two classification runs and a NER run, served on loopback with an admin token."""
    from tunelab.pipeline import train
    from tunelab.registry import RunStore
    from tunelab.serve import Limits, create_app

    folder = tmp_path_factory.mktemp("dashboard")
    store = RunStore(folder / "runs")
    files = write_csv(folder / "a.csv", make_rows(48, 1)), write_csv(folder / "b.csv", make_rows(16, 2))
    runs = {s: train(tiny_config(tiny_model, *files, s, folder), store) for s in ("full", "lora")}
    conll = write_conll(folder / "t.conll", 20, 1), write_conll(folder / "d.conll", 8, 2)
    runs["ner"] = train(tiny_config(tiny_model, *conll, "full", folder, task="token-classification",
                                    **{"model.max_length": 16, "ner.stride": 4, "train.num_train_epochs": 1}), store)
    base, server, thread = _start(create_app(store, Limits(batch_wait_ms=0), admin_token="secret"))
    yield base, runs, store, folder
    _stop(server, thread)


@pytest.fixture()
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (.ci/run installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def _not_blank(path) -> None:
    from matplotlib.image import imread

    pixels = imread(path)
    assert pixels.shape[0] > 100 and pixels.std() > 0.02, f"{path} looks blank"


def test_runs_list_renders_every_run(live, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base, runs, _, _ = live
    browser.get(base + "/")
    rows = browser.find_elements(By.CSS_SELECTOR, "table[data-table=runs] tr[data-run]")
    assert {row.get_attribute("data-run") for row in rows} == {r.id for r in runs.values()}
    ner_row = browser.find_element(By.CSS_SELECTOR, f"tr[data-run='{runs['ner'].id}']").text
    assert "token-classification" in ner_row and "f1" in ner_row
    browser.save_screenshot(str(tmp_path / "runs.png"))
    _not_blank(tmp_path / "runs.png")


def test_comparison_shows_the_selected_runs(live, browser, tmp_path):
    from selenium.webdriver.common.by import By

    base, runs, _, _ = live
    browser.get(base + "/")
    for key in ("full", "lora"):
        browser.find_element(By.CSS_SELECTOR, f"input[value='{runs[key].id}']").click()
    browser.find_element(By.ID, "compare-button").click()
    from selenium.webdriver.support.ui import WebDriverWait

    # a click that navigates does not wait for the next page: wait until it has rendered
    WebDriverWait(browser, 60).until(lambda d: "/compare" in d.current_url and d.find_elements(By.CSS_SELECTOR, "section.run"))
    sections = {s.get_attribute("data-run") for s in browser.find_elements(By.CSS_SELECTOR, "section.run")}
    assert sections == {runs["full"].id, runs["lora"].id}
    assert browser.find_elements(By.CSS_SELECTOR, "figure[data-figure=tradeoff] img")
    loaded = browser.execute_script("return Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)")
    assert loaded  # every embedded figure decodes
    browser.save_screenshot(str(tmp_path / "compare.png"))
    _not_blank(tmp_path / "compare.png")


def test_try_it_box_returns_the_servers_prediction(live, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, runs, _, _ = live
    run = runs["full"]
    browser.get(f"{base}/runs/{run.id}")
    assert browser.find_elements(By.CSS_SELECTOR, f"section[data-run='{run.id}'] figure[data-figure=learning-curves]")
    browser.find_element(By.CSS_SELECTOR, ".try-input").send_keys("the film was wonderful")
    browser.find_element(By.CSS_SELECTOR, ".try-button").click()
    answer = browser.find_element(By.CSS_SELECTOR, ".try-answer")
    WebDriverWait(browser, 30).until(lambda _: answer.get_attribute("data-status"))
    assert answer.get_attribute("data-status") == "200"
    shown = json.loads(answer.text)
    status, direct = _call(base + "/v1/predict", json.dumps({"run": run.id, "inputs": ["the film was wonderful"]}).encode())
    assert status == 200 and shown["label"] == direct["predictions"][0]["label"]
    assert shown["score"] == pytest.approx(direct["predictions"][0]["score"], abs=1e-6)
    assert browser.find_elements(By.CSS_SELECTOR, ".admin-unload")  # the server has a token: the action is offered, guarded
    browser.save_screenshot(str(tmp_path / "run.png"))
    _not_blank(tmp_path / "run.png")


def test_dashboard_is_read_only_and_answers_bad_names(live):
    base, runs, _, _ = live
    with urllib.request.urlopen(base + "/") as response:
        page = response.read().decode()
    assert "method=\"post\"" not in page.lower() and runs["full"].id in page
    assert _call(base + "/runs/..%2F..%2Fetc")[0] == 404
    assert _call(base + "/compare")[0] == 422


def test_task_head_runs_answer_over_http(live, tiny_model):
    base, runs, store, folder = live
    status, body = _call(base + "/v1/predict", json.dumps({"run": runs["ner"].id, "inputs": ["Anna visits Paris."]}).encode())
    assert status == 200 and body["task"] == "token-classification"
    record = body["predictions"][0]
    assert record["tokens"] == ["Anna", "visits", "Paris", "."] and len(record["tags"]) == 4
    for entity in record["entities"]:
        assert "Anna visits Paris."[entity["start"]:entity["end"]] == entity["text"]
    from tunelab.pipeline import train

    squad = write_squad(folder / "q.json", 3, 1), write_squad(folder / "qd.json", 1, 2)
    qa = train(tiny_config(tiny_model, *squad, "features", folder, task="question-answering",
                           **{"model.max_length": 48, "qa.doc_stride": 16, "train.num_train_epochs": 1}), store)
    context = "Boris lives in Oslo. He likes it."
    status, body = _call(base + "/v1/predict", json.dumps({"run": qa.id, "inputs": ["Where does Boris live?"],
                                                           "pairs": [context]}).encode())
    answer = body["predictions"][0]
    assert status == 200 and context[answer["start"]:answer["end"]] == answer["answer"]
    status, body = _call(base + "/v1/predict", json.dumps({"run": qa.id, "inputs": ["Where?"]}).encode())
    assert status == 422 and "needs a context" in body["error"]
    assert np.isfinite(answer["score"])
