"""Domain adaptation benchmark: does continued MLM pre-training help, and what does it forget?

Finance: adapt the bundled MiniLM on Reuters-21578 bodies (../shared/data/reuters21578), then fine-tune
on Financial PhraseBank (Sentences_50Agree, latin-1, seeded stratified 80/20) with and without the
adaptation, several seeds. Biomedical: adapt on the training split of the medical abstracts, then
classify their conditions (NER is not a tunelab task yet), with and without. The forgetting probe
(general English) and the CPU budget spent (minutes, tokens) are reported with every adaptation.

    .venv/bin/python bench/dapt.py [--seeds 3] [--adapt-steps 300] [--out bench/out]
"""

from __future__ import annotations

import argparse
import csv
import html
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "bench"))

from common import machine, write_rows  # noqa: E402


def reuters_bodies(folder: Path) -> list[str]:
    """The <BODY> text of every Reuters-21578 article, one line each (the files are latin-1 SGML)."""
    bodies = []
    for file in sorted(folder.glob("reut2-*.sgm")):
        for body in re.findall(r"<BODY>(.*?)</BODY>", file.read_text(encoding="latin-1"), flags=re.S):
            text = " ".join(html.unescape(body.replace("&#3;", "")).split())
            if text:
                bodies.append(text)
    return bodies


def phrasebank(path: Path) -> list[tuple[str, str]]:
    """(sentence, label) pairs from a Financial PhraseBank file ('sentence@label' lines, latin-1)."""
    rows = []
    for line in path.read_text(encoding="latin-1").splitlines():
        text, _, label = line.rpartition("@")
        if text.strip():
            rows.append((text.strip(), label.strip()))
    return rows


def stratified(rows: list[tuple[str, str]], share: float, seed: int) -> tuple[list, list]:
    """Seeded stratified split of (text, label) rows into (train, test)."""
    from sklearn.model_selection import train_test_split

    return train_test_split(rows, test_size=share, random_state=seed, stratify=[r[1] for r in rows])



def adapt_on(corpus: list[str], folder: Path, store, steps: int, lora: bool = False) -> dict:
    """One `tunelab adapt` run on `corpus`, capped at `steps` optimiser steps."""
    from tunelab.adapt import adapt
    from tunelab.config import load_config

    corpus_file = folder / "corpus.txt"
    corpus_file.write_text("\n".join(corpus) + "\n", encoding="utf-8")
    config = load_config(None, {"adapt.corpus": str(corpus_file), "adapt.lora": lora, "train.max_steps": steps,
                                "train.per_device_train_batch_size": 16, "quiet": True,
                                "output_dir": str(store.root / f"dapt-{folder.name}{'-lora' if lora else ''}")})
    run = adapt(config, store)
    m = run.manifest
    return {"run": run.id, "minutes": round(m["train_seconds"] / 60, 1), "tokens_seen": m["adaptation"]["tokens_seen"],
            "probes": m["metrics"]["probes"], "domain_shift": m["domain_shift"]}


def finetune(train_file: Path, test_file: Path, model: str, seed: int, store) -> dict:
    """Full fine-tuning with tunelab's defaults; validation = the held-out test split."""
    from tunelab.config import load_config
    from tunelab.pipeline import train

    config = load_config(None, {"strategy": "full", "model.name_or_path": model, "data.train": str(train_file),
                                "data.validation": str(test_file), "seed": seed, "quiet": True})
    scores = train(config, store).manifest["metrics"]["validation"]
    return {"accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}


def summarise(scores: list[dict], key: str) -> str:
    values = [s[key] for s in scores]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--adapt-steps", type=int, default=300)
    parser.add_argument("--skip-biomedical", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    args = parser.parse_args()
    from tunelab import console
    from tunelab.registry import RunStore

    console.set_quiet(True)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": machine(), "date": time.strftime("%Y-%m-%d")}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = RunStore(tmp / "runs")
        # Finance
        fin = tmp / "finance"
        fin.mkdir()
        results["finance_adapt"] = adapt_on(reuters_bodies(DATA / "reuters21578"), fin, store, args.adapt_steps)
        print("finance adapt:", json.dumps(results["finance_adapt"]), flush=True)
        results["finance_adapt_lora"] = adapt_on(reuters_bodies(DATA / "reuters21578"), fin, store, args.adapt_steps, lora=True)
        print("finance adapt (LoRA):", json.dumps(results["finance_adapt_lora"]), flush=True)
        train_rows, test_rows = stratified(phrasebank(DATA / "financial_phrasebank" / "Sentences_50Agree.txt"), 0.2, seed=0)
        train_file, test_file = write_rows(fin / "train.csv", train_rows), write_rows(fin / "test.csv", test_rows)
        for name, model in (("without", "default"), ("with", f"run:{results['finance_adapt']['run']}")):
            results[f"finance_{name}"] = [finetune(train_file, test_file, model, seed, store) for seed in range(args.seeds)]
            print(f"finance {name} DAPT:", results[f"finance_{name}"], flush=True)
        # Biomedical (classification of conditions; adaptation on the training abstracts only)
        if not args.skip_biomedical:
            bio = tmp / "biomedical"
            bio.mkdir()
            with (DATA / "medical_abstracts" / "medical_tc_test.csv").open(encoding="utf-8") as handle:
                rows = [(r["medical_abstract"], r["condition_label"]) for r in csv.DictReader(handle)]
            train_rows, test_rows = stratified(rows, 0.2, seed=0)
            results["bio_adapt"] = adapt_on([t for t, _ in train_rows], bio, store, args.adapt_steps)
            print("biomedical adapt:", json.dumps(results["bio_adapt"]), flush=True)
            train_file, test_file = write_rows(bio / "train.csv", train_rows), write_rows(bio / "test.csv", test_rows)
            for name, model in (("without", "default"), ("with", f"run:{results['bio_adapt']['run']}")):
                results[f"bio_{name}"] = [finetune(train_file, test_file, model, 0, store)]
                print(f"biomedical {name} DAPT:", results[f"bio_{name}"], flush=True)
    (args.out / "dapt.json").write_text(json.dumps(results, indent=2) + "\n")
    print(report(results, args))


def report(results: dict, args: argparse.Namespace) -> str:
    """The Markdown tables for RESULTS.md."""
    lines = [f"machine: {results['machine']}", f"date: {results['date']}", "",
             "| adaptation | minutes | tokens seen | domain MLM loss before → after | general MLM loss before → after (forgetting) |",
             "|---|---|---|---|---|"]
    adaptations = (("finance_adapt", "Reuters, full"), ("finance_adapt_lora", "Reuters, LoRA"), ("bio_adapt", "medical abstracts, full"))
    for key, name in adaptations:
        if key in results:
            r, p = results[key], results[key]["probes"]
            lines.append(f"| {name} | {r['minutes']} | {r['tokens_seen']:,} | {p['domain']['mlm_loss_before']:.3f} → "
                         f"{p['domain']['mlm_loss_after']:.3f} ({p['domain']['change']:+.1%}) | {p['general']['mlm_loss_before']:.3f} → "
                         f"{p['general']['mlm_loss_after']:.3f} ({p['general']['change']:+.1%}) |")
    lines += ["", "| task | model | accuracy (mean ± std) | macro-F1 (mean ± std) | seeds |", "|---|---|---|---|---|"]
    for task, prefix in (("Financial PhraseBank (50Agree, 80/20)", "finance"), ("medical abstracts, 5 conditions (80/20)", "bio")):
        for name in ("without", "with"):
            key = f"{prefix}_{name}"
            if key in results:
                lines.append(f"| {task} | MiniLM {name} DAPT | {summarise(results[key], 'accuracy')} |"
                             f" {summarise(results[key], 'macro_f1')} | {len(results[key])} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
