"""The ``workbench`` command line."""

import argparse
import os
import sys

from . import __version__
from .errors import WorkbenchError


def _summarise(scores, out):
    for record in scores["scores"]:
        if record["benchmark"].startswith("replication."):
            print(f"{record['benchmark']:<24} {record['verdict']:<15} {record['claim']}")
        else:
            region = record.get("region") or ""
            print(f"{record['model']:<24} {record['benchmark']:<36} {region:<4} value={record['value']:.3f}"
                  f" p={record.get('p_value', float('nan')):.4f}")
    for failure in scores["failures"]:
        print(f"FAILED {failure['model']} x {failure['benchmark']}: {failure['error']}", file=sys.stderr)
    print(f"report: {out}/index.html")
    print(f"scores: {out}/scores.json")
    return 1 if scores["failures"] else 0


def _check_out(out):
    from pathlib import Path

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise WorkbenchError(f"--out {out} exists and is not a directory")


def _demo(args):
    from .report.build import build_report
    from .report.config import DEMO_MODELS, demo_config

    models = DEMO_MODELS if args.models is None else tuple(m.strip() for m in args.models.split(","))
    config = demo_config(n_stimuli=args.n_stimuli, seed=args.seed, n_permutations=args.permutations,
                         models=models, replications=not args.no_replications)
    _check_out(args.out)
    scores = build_report(config, args.out, jobs=args.jobs, scheduler=args.scheduler,
                          progress=not args.no_progress)
    return _summarise(scores, args.out)


def _report(args):
    from .report.build import build_report
    from .report.config import load_config

    config = load_config(args.config)
    _check_out(args.out)
    scores = build_report(config, args.out, jobs=args.jobs, scheduler=args.scheduler, cache_dir=args.cache,
                          progress=not args.no_progress)
    return _summarise(scores, args.out)


def _execution_options(parser):
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, metavar="N",
                        help="worker processes on a local dask cluster (default: one per core; "
                             "1 runs every task in this process)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="use an existing dask cluster, e.g. tcp://HOST:8786")
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _train(args):
    from .models.training import save_trained, train

    config = {}
    if args.channels:
        try:
            config["channels"] = [int(c) for c in args.channels.split(",")]
        except ValueError as error:
            raise WorkbenchError(f"--channels must be comma-separated integers, got {args.channels!r}") from error
    model, card = train(args.name, seed=args.seed, epochs=args.epochs, config=config,
                        progress=not args.no_progress)
    weights, card_path = save_trained(model, card, args.out)
    for condition, accuracy in card["accuracy"].items():
        steps = " ".join(f"{a:.2f}" for a in accuracy)
        print(f"{condition:<14} accuracy per step: {steps}")
    print(f"weights: {weights}")
    print(f"model card: {card_path}")


def build_parser():
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Compare the dynamics of recurrent vision models with brains and behaviour.",
    )
    parser.add_argument("--version", action="version", version=f"workbench {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="the embedded default report: seed zoo x simulated benchmarks + replications",
        description="Train every seed zoo family, score each on every simulated benchmark (macaque "
                    "arrays, blur fMRI, human ratings), run the five replications, and write "
                    "DIR/scores.json, scores.csv, index.html, figures/ and provenance.json.",
    )
    demo.add_argument("--out", required=True, metavar="DIR", help="report directory")
    demo.add_argument("--n-stimuli", type=int, default=200, help="digits in the simulated recording (default 200)")
    demo.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    demo.add_argument("--permutations", type=int, default=1000, help="permutation draws (default 1000)")
    demo.add_argument("--models", default=None, help="comma-separated zoo names (default: one of every family)")
    demo.add_argument("--no-replications", action="store_true", help="skip the replications")
    _execution_options(demo)
    demo.set_defaults(run=_demo)
    report = commands.add_parser(
        "report", help="batch report: models x benchmarks from a TOML config",
        description="Run every (model, benchmark) task of FILE.toml (see README, 'Batch report'), "
                    "resuming from DIR/cache, and write DIR/scores.json, scores.csv, index.html, "
                    "figures/ and provenance.json. Exit code 1 if a task failed, 2 for a bad config.",
    )
    report.add_argument("--config", required=True, metavar="FILE.toml", help="report configuration")
    report.add_argument("--out", required=True, metavar="DIR", help="report directory")
    report.add_argument("--cache", default=None, metavar="DIR", help="task/model/data cache (default DIR/cache)")
    _execution_options(report)
    report.set_defaults(run=_report)
    train = commands.add_parser(
        "train", help="train a seed-zoo model on digits with its paper's recipe",
        description="Train NAME (see workbench.models.training.RECIPES) on scikit-learn digits "
                    "at 32 px on this machine; write DIR/NAME.pt (state dict) and DIR/NAME.json "
                    "(model card with config, seed, data and accuracy per step and condition).",
    )
    train.add_argument("name", metavar="NAME", help="zoo name, e.g. bl, grucnn, crcn, lindsay-feedback, convrnn")
    train.add_argument("--out", default="models", metavar="DIR", help="output directory (default models/)")
    train.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    train.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    train.add_argument("--channels", default=None, help="override channels, e.g. 8,16,32")
    train.add_argument("--no-progress", action="store_true", help="hide progress bars")
    train.set_defaults(run=_train)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except WorkbenchError as error:
        print(f"workbench {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
