"""`tunelab report` on tiny runs of every task: the HTML parses, each expected figure is there, tables match metrics.json."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import pytest

from tests.conftest import tiny_config
from tests.task_data import write_conll, write_pairs, write_squad

ONE_EPOCH = {"train.num_train_epochs": 1}


class Page(HTMLParser):
    """Figures (by data-figure), tables (by data-table: rows of cell texts), and whether every tag closed."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.figures: list[tuple[str, str]] = []  # (run section, figure name)
        self.tables: dict[tuple[str, str], list[list[str]]] = {}
        self.images: list[str] = []
        self._section, self._table, self._row, self._cell = "", None, None, None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self._section = attrs.get("data-run", "")
        elif tag == "figure":
            self.figures.append((self._section, attrs["data-figure"]))
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "table":
            self._table = (self._section, attrs.get("data-table", ""))
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
            self.tables[self._table].append(self._row)
        elif tag in ("td", "th") and self._row is not None:
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            self._row.append(self._cell.strip())
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


@pytest.fixture(scope="module")
def runs(tiny_model, tmp_path_factory):
    """One tiny run per task head (classification twice, for the comparison)."""
    from tests.conftest import make_rows, write_csv
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    folder = tmp_path_factory.mktemp("report")
    store = RunStore(folder / "runs")
    sentiment = write_csv(folder / "s.csv", make_rows(48, 1)), write_csv(folder / "s-dev.csv", make_rows(16, 2))
    made = {strategy: train(tiny_config(tiny_model, *sentiment, strategy, folder), store) for strategy in ("full", "features")}
    conll = write_conll(folder / "t.conll", 30, 1), write_conll(folder / "d.conll", 10, 2)
    made["ner"] = train(tiny_config(tiny_model, *conll, "full", folder, task="token-classification",
                                    **{"model.max_length": 16, "ner.stride": 4}, **ONE_EPOCH), store)
    squad = write_squad(folder / "t.json", 4, 1), write_squad(folder / "d.json", 2, 2)
    made["qa"] = train(tiny_config(tiny_model, *squad, "full", folder, task="question-answering",
                                   **{"model.max_length": 48, "qa.doc_stride": 16}, **ONE_EPOCH), store)
    pairs = write_pairs(folder / "t.tsv", 40, 1), write_pairs(folder / "d.tsv", 20, 2)
    made["similarity"] = train(tiny_config(tiny_model, *pairs, "full", folder, task="similarity", **ONE_EPOCH,
                                           **{"data.text_column": "sentence1", "data.text_pair_column": "sentence2",
                                              "data.label_column": "score"}), store)
    return made, store, folder


def _cells(page: Page, run_id: str, table: str) -> dict[str, list[str]]:
    rows = page.tables[(run_id, table)]
    return {row[0]: row[1:] for row in rows[1:]}


def test_every_task_gets_its_figures_and_tables_match_metrics(runs):
    from tunelab.report import expand, render

    made, store, _ = runs
    page = Page(render(expand(store, [r.id for r in made.values()])))
    figures = set(page.figures)
    full, features = made["full"].id, made["features"].id
    for name in ("learning-curves", "confusion-matrix", "per-class", "calibration"):
        assert (full, name) in figures, name
    assert (features, "learning-curves") not in figures and (features, "confusion-matrix") in figures  # a sklearn head has no curve
    assert {(made["ner"].id, "per-entity-type"), (made["qa"].id, "by-answer-length"),
            (made["similarity"].id, "predicted-vs-gold")} <= figures
    assert ("", "tradeoff") in figures  # the two classification runs share a metric: one score-against-cost chart
    assert all(src.startswith("data:image/png;base64,") and len(src) > 2000 for src in page.images)  # embedded, not linked
    metrics = json.loads((made["full"].path / "metrics.json").read_text())["validation"]
    per_class = _cells(page, full, "per-class")
    for label, scores in metrics["per_class"].items():
        assert per_class[label][:3] == [f"{scores[k]:.4f}" for k in ("precision", "recall", "f1")]
    scores = _cells(page, full, "scores")["validation"]
    assert f"{metrics['accuracy']:.4f}" in scores and f"{metrics['macro_f1']:.4f}" in scores
    ner = json.loads((made["ner"].path / "metrics.json").read_text())["validation"]
    assert {k: v[2] for k, v in _cells(page, made["ner"].id, "per-entity-type").items()} == {
        k: f"{v['f1']:.4f}" for k, v in ner["per_type"].items()}
    qa = json.loads((made["qa"].path / "metrics.json").read_text())["validation"]
    assert {k: int(v[2]) for k, v in _cells(page, made["qa"].id, "by-answer-length").items()} == {
        k: v["n"] for k, v in qa["by_answer_length"].items()}


def test_report_command_and_compare_write_self_contained_files(runs, tiny_model, tmp_path):
    from tests.conftest import make_rows, write_csv
    from tunelab.cli import main

    made, store, _ = runs
    assert main(["report", made["ner"].id, "--store", str(store.root)]) == 0
    html = (made["ner"].path / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # opens with no network
    train_file, dev_file = write_csv(tmp_path / "a.csv", make_rows(32, 1)), write_csv(tmp_path / "b.csv", make_rows(12, 2))
    assert main(["compare", "--strategies", "features,lora", "--train", str(train_file), "--validation", str(dev_file),
                 "--model", str(tiny_model), "--store", str(tmp_path / "runs"), "--quiet", "model.max_length=32",
                 "train.num_train_epochs=1"]) == 0
    report = next((tmp_path / "runs").glob("compare-*/report.html"))
    page = Page(report.read_text())
    assert len([f for f in page.figures if f[1] == "confusion-matrix"]) == 2 and ("", "tradeoff") in page.figures
    assert main(["report", "no-such-run", "--store", str(store.root)]) == 2
