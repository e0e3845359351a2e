"""Task heads on the shared benchmarks: CoNLL-2003 NER, SQuAD v1.1 (dev split by article), STS-B.

Each task runs tunelab's strategies and, in the same script, the plain-Transformers (or
sentence-transformers) stock recipe on the same data and epochs. Every model — the reference's
too — is scored by the same evaluation code (tunelab's), so the table compares training recipes.

    .venv/bin/python bench/tasks.py --task ner|qa|sts [--epochs N] [--strategies full,lora,features] [--no-reference]
        [--train-limit N]   # first N training rows/sentences/questions (a CPU budget), reported in the table
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "bench"))

from common import machine, prepare, save  # noqa: E402

DEFAULT_EPOCHS = {"ner": 3.0, "qa": 2.0, "sts": 4.0}
DATA = {"ner": "conll2003: train eng.train, validation eng.testa, test eng.testb (IOB1 read, scored as IOB2)",
        "qa": "squad_v1.1/dev-v1.1.json: articles 1-38 train (10% of them held out for validation), articles 39-48 test",
        "sts": "stsb: train sts-train, validation sts-dev, test sts-test (scores 0-5)"}


def conll_files(folder: Path, limit: int | None) -> dict[str, Path]:
    source = SHARED / "conll2003"
    train = source / "eng.train"
    if limit:  # the first `limit` sentences
        blocks = train.read_text(encoding="utf-8").split("\n\n")
        train = folder / "eng.train"
        train.write_text("\n\n".join(blocks[: limit + 1]) + "\n", encoding="utf-8")
    return {"data.train": str(train), "data.validation": str(source / "eng.testa"), "data.test": str(source / "eng.testb")}


def squad_files(folder: Path, limit: int | None) -> dict[str, Path]:
    """First 38 articles of dev-v1.1 for training (with validation held out by article), last 10 as test."""
    data = json.loads((SHARED / "squad_v1.1" / "dev-v1.1.json").read_text(encoding="utf-8"))
    articles = data["data"]
    train, test = articles[:38], articles[38:]
    if limit:
        kept, count = [], 0
        for article in train:
            if count >= limit:
                break
            kept.append(article)
            count += sum(len(p["qas"]) for p in article["paragraphs"])
        train = kept
    paths = {}
    for name, part in (("train", train), ("test", test)):
        path = folder / f"squad-{name}.json"
        path.write_text(json.dumps({"version": "1.1", "data": part}), encoding="utf-8")
        paths[f"data.{name}"] = str(path)
    return paths


def sts_files(folder: Path, limit: int | None) -> dict[str, Path]:
    """STS-B's header-less TSVs (7 or 9 fields, quotes literal) as sentence1/sentence2/score TSVs."""
    paths = {}
    for name, source in (("train", "sts-train.csv"), ("validation", "sts-dev.csv"), ("test", "sts-test.csv")):
        with (SHARED / "stsb" / source).open(encoding="utf-8") as handle:
            rows = [r for r in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE)]
        if name == "train" and limit:
            rows = rows[:limit]
        path = folder / f"sts-{name}.tsv"
        with path.open("w", encoding="utf-8") as out:
            out.write("sentence1\tsentence2\tscore\n")
            for r in rows:
                out.write(f"{r[5]}\t{r[6]}\t{r[4]}\n")
        paths[f"data.{name}"] = str(path)
    return paths


TASKS = {
    "ner": ("token-classification", conll_files, {}),
    "qa": ("question-answering", squad_files, {}),
    "sts": ("similarity", sts_files, {"data.text_column": "sentence1", "data.text_pair_column": "sentence2",
                                      "data.label_column": "score"}),
}


def reference_ner(files: dict, epochs: float, folder: Path, config) -> tuple[object, float]:
    """transformers' run_ner recipe: first sub-word labelled, lr 5e-5, batch 8, no warmup, fp32."""
    from transformers import AutoModelForTokenClassification, DataCollatorForTokenClassification, Trainer, TrainingArguments

    from tunelab.data.conll import normalise_scheme, read_tagged
    from tunelab.models import bundled_model_path, load_tokenizer, resolve_model
    from tunelab.tasks.token_classification import tag_order

    sentences = read_tagged(files["data.train"])
    normalise_scheme(sentences, "auto", files["data.train"])  # the hub's conll2003 is IOB2 too
    labels = tag_order({t for s in sentences for t in s.tags})
    index = {t: i for i, t in enumerate(labels)}
    tokenizer = load_tokenizer(resolve_model("default"))
    import datasets

    def align(batch):
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True)
        all_labels = []
        for i, tags in enumerate(batch["tags"]):
            previous, row = None, []
            for word in encoded.word_ids(i):
                row.append(-100 if word is None or word == previous else index[tags[word]])
                previous = word
            all_labels.append(row)
        encoded["labels"] = all_labels
        return encoded

    dataset = datasets.Dataset.from_dict({"tokens": [s.tokens for s in sentences], "tags": [s.tags for s in sentences]})
    dataset = dataset.map(align, batched=True, remove_columns=["tokens", "tags"])
    model = AutoModelForTokenClassification.from_pretrained(bundled_model_path(), num_labels=len(labels),
                                                            id2label=dict(enumerate(labels)), label2id=index)
    args = TrainingArguments(output_dir=str(folder / "ref"), num_train_epochs=epochs, per_device_train_batch_size=8,
                             learning_rate=5e-5, save_strategy="no", report_to="none", seed=42, use_cpu=True, disable_tqdm=True)
    start = time.perf_counter()
    Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorForTokenClassification(tokenizer)).train()
    return _task_predictor(config, model, tokenizer, labels, {}), time.perf_counter() - start


def reference_qa(files: dict, epochs: float, folder: Path, config) -> tuple[object, float]:
    """transformers' run_qa recipe: max_seq 384, doc_stride 128, lr 3e-5, batch 12, no warmup, fp32."""
    from transformers import AutoModelForQuestionAnswering, Trainer, TrainingArguments, default_data_collator

    from tunelab.models import bundled_model_path, load_tokenizer, resolve_model
    from tunelab.tasks import task_for

    tokenizer = load_tokenizer(resolve_model("default"))
    task = task_for(config)
    train = task.read(files["data.train"])
    dataset = task.encode(tokenizer, train, {}, [])  # the recipe's windows: only_second, stride, CLS for outside answers
    dataset = dataset.map(lambda b: tokenizer.pad(b, padding="max_length", max_length=384), batched=True)  # run_qa pads to max
    model = AutoModelForQuestionAnswering.from_pretrained(bundled_model_path())
    args = TrainingArguments(output_dir=str(folder / "ref"), num_train_epochs=epochs, per_device_train_batch_size=12,
                             learning_rate=3e-5, save_strategy="no", report_to="none", seed=42, use_cpu=True, disable_tqdm=True)
    start = time.perf_counter()
    Trainer(model=model, args=args, train_dataset=dataset, data_collator=default_data_collator).train()
    return _task_predictor(config, model, tokenizer, [], {"version_2": False}), time.perf_counter() - start


def reference_sts(files: dict, epochs: float, folder: Path, config) -> tuple[object, float]:
    """sentence-transformers' training_stsbenchmark recipe: CoSENTLoss, batch 16, lr 2e-5, 10% warmup, fp32."""
    import datasets
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import losses
    from sentence_transformers.sentence_transformer.trainer import SentenceTransformerTrainer
    from sentence_transformers.sentence_transformer.training_args import SentenceTransformerTrainingArguments

    from tunelab.models import bundled_model_path

    rows = [line.split("\t") for line in Path(files["data.train"]).read_text(encoding="utf-8").splitlines()[1:]]
    train = datasets.Dataset.from_dict({"sentence1": [r[0] for r in rows], "sentence2": [r[1] for r in rows],
                                        "score": [float(r[2]) / 5.0 for r in rows]})
    model = SentenceTransformer(str(bundled_model_path()), device="cpu")
    args = SentenceTransformerTrainingArguments(output_dir=str(folder / "ref"), num_train_epochs=epochs, per_device_train_batch_size=16,
                                                learning_rate=2e-5, warmup_steps=0.1, save_strategy="no", report_to="none", seed=42,
                                                use_cpu=True, disable_tqdm=True)
    start = time.perf_counter()
    SentenceTransformerTrainer(model=model, args=args, train_dataset=train, loss=losses.CoSENTLoss(model)).train()
    seconds = time.perf_counter() - start
    return _task_predictor(config, _bi_encoder(model, config), model.tokenizer, [], {"architecture": "bi-encoder"}), seconds


def _bi_encoder(model, config):
    from tunelab.tasks.similarity import _bi_encoder_class

    return _bi_encoder_class()(model[0].auto_model, "mean", config.similarity.scale)


def _task_predictor(config, model, tokenizer, labels, info):
    from tunelab.task_pipeline import TaskPredictor
    from tunelab.tasks import task_for

    return TaskPredictor(task_for(config), model.eval(), tokenizer, {"labels": labels, "task_info": info, "precision": "fp32"})


REFERENCES = {"ner": reference_ner, "qa": reference_qa, "sts": reference_sts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=sorted(TASKS), required=True)
    parser.add_argument("--epochs", type=float, default=None)
    parser.add_argument("--strategies", default=None,
                        help="default: features,full,lora (+ cross-encoder for sts); strategy:key=value;key=value for variants")
    parser.add_argument("--train-limit", type=int, default=None)
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    prepare(args.out)
    from tunelab.config import load_config
    from tunelab.pipeline import train
    from tunelab.registry import RunStore

    task_name, make_files, columns = TASKS[args.task]
    epochs = args.epochs or DEFAULT_EPOCHS[args.task]
    strategies = (args.strategies or ("features,full,lora,cross-encoder" if args.task == "sts" else "features,full,lora")).split(",")
    results = []
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        files = make_files(folder, args.train_limit)
        store = RunStore(folder / "runs")
        base = {"task": task_name, "quiet": True, "train.num_train_epochs": epochs, **columns, **files}
        for setup in strategies:  # "full" or "full:train.freeze_embeddings=false;train.learning_rate=1e-4"
            strategy, _, extra = setup.partition(":")
            values = dict(base, strategy=strategy, **dict(item.split("=", 1) for item in extra.split(";") if item))
            if strategy == "cross-encoder":
                values.update(strategy="full", **{"similarity.architecture": "cross-encoder"})
            run = train(load_config(None, values), store)
            m = run.manifest
            results.append({"setup": f"tunelab {setup}", "validation": m["metrics"].get("validation"), "test": m["metrics"].get("test"),
                            "train_seconds": m["train_seconds"], "trainable_params": m["trainable_params"],
                            "artifact_mb": round(m["artifact_bytes"] / 2**20, 2), "precision": m["precision"]})
            print(f"done: {results[-1]}", flush=True)
        if not args.no_reference:
            config = load_config(None, base).validate()
            predictor, seconds = REFERENCES[args.task](files, epochs, folder, config)
            task = predictor.task
            scores = {}
            for split in ("validation", "test"):
                if f"data.{split}" in files:
                    rows = task.read(files[f"data.{split}"])
                    info, labels = predictor.manifest["task_info"], predictor.manifest["labels"]
                    scores[split] = task.headline(task.score(predictor.predict(rows), rows, info, labels))
            params = sum(p.numel() for p in predictor.model.parameters())
            results.append({"setup": "reference recipe (fp32)", **scores, "train_seconds": round(seconds, 1),
                            "trainable_params": params, "artifact_mb": None, "precision": "fp32"})
            print(f"done: {results[-1]}", flush=True)
    metric = {"ner": "f1", "qa": "f1", "sts": "spearman"}[args.task]
    second = {"ner": "precision", "qa": "exact_match", "sts": "pearson"}[args.task]
    evaluated = "test"
    lines = [f"{args.task}: {DATA[args.task]}; {epochs:g} epochs; train limit {args.train_limit or 'none'};"
             f" bundled MiniLM (6 layers, 384 wide); scored by tunelab's evaluation on the {evaluated} split",
             f"machine: {machine()}", f"date: {time.strftime('%Y-%m-%d')}", "",
             f"| setup | {evaluated} {metric} | {evaluated} {second} | validation {metric} | train s | trainable params"
             " | artifact MB |",
             "|---|---|---|---|---|---|---|"]
    for r in results:
        test, val = r.get(evaluated) or {}, r.get("validation") or {}
        nan = float("nan")
        lines.append(f"| {r['setup']} | {test.get(metric, nan):.4f} | {test.get(second, nan):.4f} | {val.get(metric, nan):.4f}"
                     f" | {r['train_seconds']:.0f} | {r['trainable_params']:,} | {r['artifact_mb'] or '-'} |")
    save(args.out, f"tasks-{args.task}", "\n".join(lines), results)


if __name__ == "__main__":
    main()
