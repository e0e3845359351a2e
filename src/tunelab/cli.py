"""The `tunelab` command: a table of subcommands over the public functions. No logic of its own."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tunelab import __version__, console
from tunelab.errors import UserError

# Each training flag is a shorthand for a config path, so flags, YAML and key=value agree.
CONFIG_FLAGS = {
    "task": ("task", "classification | token-classification | question-answering | similarity (default: classification)"),
    "train": ("data.train", "training data: CSV, TSV, JSONL, Parquet, hf:<dataset>; NER: CoNLL columns; QA: SQuAD JSON"),
    "validation": ("data.validation", "validation file; default: a seeded stratified 10%% of --train"),
    "test": ("data.test", "optional test file, scored once after training"),
    "text_column": ("data.text_column", "column holding the text (default: text)"),
    "text_pair_column": ("data.text_pair_column", "column holding a second text, for sentence-pair tasks"),
    "label_column": ("data.label_column", "column holding the label (default: label)"),
    "token_column": ("ner.token_column", "NER, CoNLL files: column index of the word (default: 0)"),
    "tag_column": ("ner.tag_column", "NER, CoNLL files: column index of the tag (default: -1, the last)"),
    "model": ("model.name_or_path", "hub id, local folder or run:<id> (default: the bundled MiniLM)"),
    "max_length": ("model.max_length", "tokens per input window (default by task: 128; NER 256; QA 384)"),
    "seed": ("seed", "random seed (default: 42)"),
    "output_dir": ("output_dir", "where to write the run (default: <store>/<strategy>-<time>)"),
}
DATA_COLUMN_FLAGS = ("text_column", "text_pair_column", "label_column")
ADAPT_FLAGS = {
    "corpus": ("adapt.corpus", "domain text: .txt (a document per line), a folder of .txt, or CSV/JSONL/Parquet"),
    "general_corpus": ("adapt.general_corpus", "general text for the forgetting probe (default: tunelab's own)"),
    "text_column": ("adapt.text_column", "text column of a table corpus (default: text)"),
    "model": ("model.name_or_path", "model to adapt (default: the bundled MiniLM)"),
    "max_length": ("model.max_length", "block length in tokens (default: 128)"),
    "seed": ("seed", "random seed (default: 42)"),
    "output_dir": ("output_dir", "where to write the run; its folder name is the run id"),
}
ADAPT_SWITCHES = {"line_by_line": "adapt.line_by_line", "whole_word_mask": "adapt.whole_word_mask", "lora": "adapt.lora"}


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, help="run store folder (default: $TUNELAB_HOME or ./runs)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or info lines")


def _add_training(parser: argparse.ArgumentParser) -> None:
    for flag, (path, text) in CONFIG_FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None, help=f"{text} [{path}]")
    parser.add_argument("--config", default=None, help="YAML config file; flags and key=value override it")
    parser.add_argument("--force", action="store_true", help="train despite guardrail errors [force]")
    parser.add_argument("--probe-forgetting", action="store_true",
                        help="after training, measure general-English masked-LM loss, base vs fine-tuned [probe_forgetting]")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.learning_rate=3e-5")
    _add_store(parser)


def _add_columns(parser: argparse.ArgumentParser) -> None:
    for flag in DATA_COLUMN_FLAGS:
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None,
                            help=f"{CONFIG_FLAGS[flag][1]} (default: the run's own)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(prog="tunelab", description="Adapt pre-trained transformers to your task.")
    parser.add_argument("--version", action="version", version=f"tunelab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser("train", help="fine-tune one model with one strategy")
    _add_training(train)
    train.add_argument("--strategy", default=None, help="features | full | lora | auto (default: full) [strategy]")
    train.add_argument("--seeds", type=int, default=1, help="train with N seeds (seed, seed+1, ...) and report mean ± std")
    train.add_argument("--resume", default=None, metavar="RUN_OR_DIR",
                       help="continue an interrupted run from its latest checkpoint, with its own config")
    train.set_defaults(handler=_train)

    plan = commands.add_parser("plan", help="profile data and hardware, estimate each strategy, recommend one")
    _add_training(plan)
    plan.add_argument("--output", default="plan.json", help="where to save the plan as JSON (default: plan.json)")
    plan.set_defaults(handler=_plan)

    compare = commands.add_parser("compare", help="train several strategies on one split and tabulate them")
    _add_training(compare)
    compare.add_argument("--strategies", default="features,full,lora", help="comma-separated (default: all three)")
    compare.add_argument("--models", default=None, help="comma-separated models to cross with the strategies")
    compare.add_argument("--seeds", type=int, default=1, help="train each setup with N seeds and report mean ± std")
    compare.set_defaults(handler=_compare)

    adapt = commands.add_parser("adapt", help="continued masked-LM pre-training on domain text (DAPT/TAPT)")
    for flag, (path, text) in ADAPT_FLAGS.items():
        adapt.add_argument(f"--{flag.replace('_', '-')}", dest=flag, default=None, help=f"{text} [{path}]")
    adapt.add_argument("--line-by-line", action="store_true", help="one example per line, not concatenated blocks")
    adapt.add_argument("--whole-word-mask", action="store_true", help="mask whole words rather than sub-words")
    adapt.add_argument("--lora", action="store_true", help="adapt through LoRA (cheaper), merged at the end")
    adapt.add_argument("--config", default=None, help="YAML config file; flags and key=value override it")
    adapt.add_argument("--force", action="store_true", help="adapt despite guardrail errors [force]")
    adapt.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.num_train_epochs=1")
    _add_store(adapt)
    adapt.set_defaults(handler=_adapt)

    distill = commands.add_parser("distill", help="distil a fine-tuned run into a smaller, faster student run")
    _add_training(distill)
    distill.add_argument("--teacher", required=True, help="the fine-tuned run to learn from (full or lora) [distill.teacher]")
    distill.add_argument("--student", default=None, help="student model with a fresh head [distill.student]")
    distill.add_argument("--student-layers", type=int, default=None,
                         help="or: the teacher with only N encoder layers (e.g. 6 -> 3) [distill.student_layers]")
    distill.add_argument("--temperature", type=float, default=None, help="softmax temperature (default 2) [distill.temperature]")
    distill.add_argument("--alpha", type=float, default=None, help="weight of the soft labels (default 0.5) [distill.alpha]")
    distill.add_argument("--unlabeled", default=None, help="extra unlabelled texts for soft labels [distill.unlabeled]")
    distill.set_defaults(handler=_distill)

    evaluate = commands.add_parser("evaluate", help="score a run on a labelled file")
    evaluate.add_argument("run", help="run id or run folder")
    evaluate.add_argument("--data", required=True, help="labelled file to score")
    evaluate.add_argument("--json", action="store_true", help="print the full metrics as JSON")
    _add_columns(evaluate)
    _add_store(evaluate)
    evaluate.set_defaults(handler=_evaluate)

    predict = commands.add_parser("predict", help="label new texts with a run")
    predict.add_argument("run", help="run id or run folder")
    predict.add_argument("--input", required=True, help="file of texts (labels not needed)")
    predict.add_argument("--output", required=True, help="predictions, one JSON object per line")
    predict.add_argument("--batch-size", type=int, default=64)
    _add_columns(predict)
    _add_store(predict)
    predict.set_defaults(handler=_predict)

    export = commands.add_parser("export", help="export a full or LoRA run to ONNX (+ int8), with a parity check")
    export.add_argument("run", help="run id or run folder")
    export.add_argument("--output", default=None, help="folder to write (default: <run>/onnx)")
    export.add_argument("--quantize", action="store_true", help="also write an int8 dynamically quantised model")
    export.add_argument("--data", default=None, help="labelled file for the parity check (default: the run's validation split)")
    export.add_argument("--rows", type=int, default=500, help="rows checked for parity (default: 500)")
    _add_store(export)
    export.set_defaults(handler=_export)

    push = commands.add_parser("push", help="upload a run to the Hugging Face Hub with a model card (private by default)")
    push.add_argument("run", help="run id or run folder")
    push.add_argument("--repo-id", required=True, help="<user or organisation>/<name>; the token comes from HF_TOKEN")
    push.add_argument("--public", action="store_true", help="create the repository public (default: private)")
    push.add_argument("--card-only", action="store_true", help="write the folder that would be uploaded, and upload nothing")
    _add_store(push)
    push.set_defaults(handler=_push)

    pull = commands.add_parser("pull", help="download a run pushed by tunelab into the store")
    pull.add_argument("repo_id", help="<user or organisation>/<name>")
    pull.add_argument("--revision", default=None)
    _add_store(pull)
    pull.set_defaults(handler=_pull)

    serve = commands.add_parser("serve", help="REST API over the store's runs: POST /v1/predict, /v1/runs, /healthz, /docs")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--max-inputs", type=int, default=256, help="texts per request (default 256; more: 413)")
    serve.add_argument("--max-chars", type=int, default=10_000, help="characters per text (default 10,000; more: 413)")
    serve.add_argument("--max-loaded-runs", type=int, default=4, help="runs kept in memory (default 4)")
    serve.add_argument("--batch-wait-ms", type=float, default=5.0,
                       help="micro-batching: wait this long for concurrent requests to share a pass (0: off; default 5)")
    serve.add_argument("--max-batch", type=int, default=64, help="micro-batching: texts per pass at most (default 64)")
    serve.add_argument("--onnx", choices=("fp32", "int8"), default=None,
                       help="serve runs through their `tunelab export` (when it passed its parity check) with onnxruntime")
    _add_store(serve)
    serve.set_defaults(handler=_serve)

    report = commands.add_parser("report", help="one self-contained HTML report of runs (curves, confusions, trade-offs)")
    report.add_argument("runs", nargs="+", metavar="RUN", help="run ids or folders; a comparison id stands for its runs")
    report.add_argument("--output", default=None, help="HTML file (default: <run>/report.html for one run, else report.html)")
    _add_store(report)
    report.set_defaults(handler=_report)

    embed = commands.add_parser("embed", help="sentence vectors from a similarity bi-encoder run, for search or clustering")
    embed.add_argument("run", help="run id or run folder (tunelab train --task similarity)")
    embed.add_argument("--input", required=True, help="texts: .txt (one per line) or a CSV/TSV/JSONL/Parquet table")
    embed.add_argument("--output", required=True, help="vectors.npy ([rows, dim] float32, unit length) or .jsonl")
    embed.add_argument("--text-column", default=None, help="text column of a table (default: the run's own)")
    embed.add_argument("--batch-size", type=int, default=64)
    _add_store(embed)
    embed.set_defaults(handler=_embed)

    runs = commands.add_parser("runs", help="list, show or remove runs")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")
    listing = runs_commands.add_parser("list", help="all runs with their scores")
    listing.add_argument("--json", action="store_true")
    listing.add_argument("--interrupted", action="store_true", help="list runs whose process died before they finished")
    _add_store(listing)
    listing.set_defaults(handler=_runs_list)
    show = runs_commands.add_parser("show", help="one run's manifest")
    show.add_argument("run")
    _add_store(show)
    show.set_defaults(handler=_runs_show)
    remove = runs_commands.add_parser("rm", help="delete a run")
    remove.add_argument("run")
    _add_store(remove)
    remove.set_defaults(handler=_runs_rm)
    return parser


def _config(args: argparse.Namespace, flags: dict[str, tuple[str, str]] = CONFIG_FLAGS) -> Any:
    from tunelab.config import apply_overrides, load_config

    overrides = {flags[f][0]: getattr(args, f) for f in flags if getattr(args, f, None) is not None}
    if getattr(args, "strategy", None):
        overrides["strategy"] = args.strategy
    if args.quiet:
        overrides["quiet"] = True
    if args.force:
        overrides["force"] = True
    if getattr(args, "probe_forgetting", False):
        overrides["probe_forgetting"] = True
    return apply_overrides(load_config(args.config, overrides), args.overrides)


def _store(args: argparse.Namespace) -> Any:
    from tunelab.registry import RunStore

    return RunStore(args.store)


def _columns(args: argparse.Namespace) -> dict[str, str | None]:
    return {flag: getattr(args, flag) for flag in DATA_COLUMN_FLAGS}


def _train(args: argparse.Namespace) -> None:
    from tunelab.pipeline import train

    if args.resume:
        _resume(args)
        return
    config = _config(args)
    if args.seeds > 1:
        from tunelab.compare import compare

        compare(config, _store(args), [config.strategy], seeds=args.seeds)
        return
    train(config, _store(args))


def _resume(args: argparse.Namespace) -> None:
    from tunelab.config import load_config
    from tunelab.pipeline import train

    given = [f"--{flag.replace('_', '-')}" for flag in CONFIG_FLAGS if getattr(args, flag) is not None]
    given += ["--config"] * bool(args.config) + ["--strategy"] * bool(args.strategy) + ["key=value"] * bool(args.overrides)
    given += ["--seeds"] * (args.seeds != 1) + ["--probe-forgetting"] * args.probe_forgetting + ["--force"] * args.force
    if given:
        raise UserError(f"--resume continues a run with the config it was started with; drop {', '.join(given)}")
    store = _store(args)
    folder = store.find_interrupted(args.resume)
    train(load_config(folder / "config.yaml", {"quiet": True} if args.quiet else None), store, resume=folder)


def _plan(args: argparse.Namespace) -> None:
    from tunelab.plan import plan_from_config, render
    from tunelab.registry import write_json

    plan = plan_from_config(_config(args), _store(args))
    write_json(Path(args.output), plan)
    print(render(plan) + f"\n\nsaved to {args.output}")


def _compare(args: argparse.Namespace) -> None:
    from tunelab.compare import compare, parse_list
    from tunelab.config import STRATEGIES

    strategies = parse_list(args.strategies, "strategies", STRATEGIES)
    models = parse_list(args.models, "models") if args.models else None
    compare(_config(args), _store(args), strategies, models, seeds=args.seeds)


def _adapt(args: argparse.Namespace) -> None:
    from tunelab.adapt import adapt
    from tunelab.config import apply_overrides

    config = _config(args, ADAPT_FLAGS)
    apply_overrides(config, {path: True for flag, path in ADAPT_SWITCHES.items() if getattr(args, flag)})
    apply_overrides(config, args.overrides)  # key=value last, as for train
    adapt(config, _store(args))


def _distill(args: argparse.Namespace) -> None:
    from tunelab.config import apply_overrides
    from tunelab.pipeline import distill, distillation_table

    config = _config(args)
    flags = {"teacher": "distill.teacher", "student": "distill.student", "student_layers": "distill.student_layers",
             "temperature": "distill.temperature", "alpha": "distill.alpha", "unlabeled": "distill.unlabeled"}
    apply_overrides(config, {path: getattr(args, flag) for flag, path in flags.items() if getattr(args, flag) is not None})
    apply_overrides(config, args.overrides)  # key=value last, as for train
    run = distill(config, _store(args))
    console.result(distillation_table(run))


def _evaluate(args: argparse.Namespace) -> None:
    from tunelab.pipeline import evaluate

    metrics = evaluate(args.run, args.data, _store(args), _columns(args), quiet=args.quiet)
    if args.json:
        print(json.dumps(metrics, indent=2))
        return
    if "task" in metrics:  # a task head beyond single-label classification
        _print_task_metrics(metrics, args.data)
        return
    print(f"{metrics['run']} on {args.data} ({metrics['n']} rows): accuracy {metrics['accuracy']:.4f},"
          f" macro-F1 {metrics['macro_f1']:.4f}")
    for label, scores in metrics["per_class"].items():
        print(f"  {label:<24} precision {scores['precision']:.3f}  recall {scores['recall']:.3f}"
              f"  f1 {scores['f1']:.3f}  support {scores['support']}")


def _print_task_metrics(metrics: dict[str, Any], source: str) -> None:
    scalars = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    print(f"{metrics['run']} ({metrics['task']}) on {source} ({metrics['n']} rows): {scalars}")
    for name, scores in {**metrics.get("per_type", {}), **metrics.get("per_class", {}), **metrics.get("by_answer_length", {})}.items():
        print(f"  {name:<24} " + "  ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()))


def _report(args: argparse.Namespace) -> None:
    from tunelab.report import expand, write_report

    runs = expand(_store(args), args.runs)
    output = Path(args.output) if args.output else (runs[0].path / "report.html" if len(runs) == 1 else Path("report.html"))
    print(f"report on {len(runs)} run(s) written to {write_report(runs, output)}")


def _embed(args: argparse.Namespace) -> None:
    from tunelab.task_pipeline import embed_texts

    store = _store(args)
    rows, dimension = embed_texts(store.get(args.run), args.input, args.output, store, args.text_column, args.quiet, args.batch_size)
    console.info(f"{rows} vectors of dimension {dimension} written to {args.output}")


def _predict(args: argparse.Namespace) -> None:
    from tunelab.pipeline import predict

    count = predict(args.run, args.input, args.output, _store(args), _columns(args), args.quiet, args.batch_size)
    console.info(f"{count} predictions written to {args.output}")


def _export(args: argparse.Namespace) -> None:
    from tunelab.export import ExportDisagrees, export, render

    try:
        report = export(args.run, _store(args), args.output, args.quantize, args.data, args.rows)
    except ExportDisagrees as failure:
        print(render(failure.report))
        raise
    print(render(report) + f"\n\nexported to {report['folder']}")


def _push(args: argparse.Namespace) -> None:
    from tunelab import hub

    store = _store(args)
    if args.card_only:
        run = store.get(args.run)
        folder = hub.stage(run, Path(f"{run.id}-hub"))
        print(f"wrote {folder} (README.md model card and the run's files); nothing uploaded")
        return
    url = hub.push(args.run, args.repo_id, store, public=args.public)
    print(f"pushed {args.run} to {url} ({'public' if args.public else 'private'})")


def _pull(args: argparse.Namespace) -> None:
    from tunelab import hub

    run = hub.pull(args.repo_id, _store(args), args.revision)
    print(f"pulled {args.repo_id} as run {run.id} -> {run.path}")


def _serve(args: argparse.Namespace) -> None:
    from tunelab.serve import Limits, serve

    serve(_store(args), args.host, args.port,
          Limits(args.max_inputs, args.max_chars, args.max_loaded_runs, args.batch_wait_ms, args.max_batch), args.onnx)


def _runs_list(args: argparse.Namespace) -> None:
    if args.interrupted:
        _runs_interrupted(args)
        return
    runs = _store(args).list()
    if args.json:
        print(json.dumps([{"id": r.id, "path": str(r.path), **r.manifest} for r in runs], indent=2, default=str))
        return
    if not runs:
        print(f"no runs in {_store(args).root}")
        return
    from tunelab.task_pipeline import headline_text

    print(f"{'id':<36} {'task':<20} {'strategy':<9} {'model':<22} {'validation':<22} created")
    for run in runs:
        manifest = run.manifest
        task = manifest.get("task_kind", manifest.get("task", "classification")) if run.kind == "run" else run.kind
        model = manifest.get("base_model", {}).get("given", "-")
        print(f"{run.id:<36} {task:<20} {manifest.get('strategy', '-'):<9} {model[:22]:<22} {headline_text(manifest):<22}"
              f" {manifest.get('created', '')}")


def _runs_interrupted(args: argparse.Namespace) -> None:
    from tunelab.training import latest_checkpoint

    found = []
    for run_id, folder in _store(args).interrupted():
        checkpoint = latest_checkpoint(folder / "checkpoints")
        found.append({"id": run_id, "path": str(folder), "checkpoint": checkpoint.name if checkpoint else None})
    if args.json:
        print(json.dumps(found, indent=2))
        return
    if not found:
        print(f"no interrupted runs in {_store(args).root}")
    for run in found:
        action = f"resume: tunelab train --resume {run['id']}" if run["checkpoint"] else "no checkpoint; remove it"
        print(f"{run['id']:<36} {run['checkpoint'] or '-':<18} {action}")


def _runs_show(args: argparse.Namespace) -> None:
    run = _store(args).get(args.run)
    print(json.dumps({"id": run.id, "path": str(run.path), **run.manifest}, indent=2, default=str))


def _runs_rm(args: argparse.Namespace) -> None:
    run = _store(args).remove(args.run)
    console.info(f"removed run {run.id} ({run.path})")


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 for user errors, with one line on stderr)."""
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        console.set_quiet(getattr(args, "quiet", False))
        handler(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
