"""The ``workbench`` command line."""

import argparse
import sys

from . import __version__
from .errors import WorkbenchError


def _demo(args):
    from .demo import run_demo

    scores = run_demo(args.out, n_stimuli=args.n_stimuli, seed=args.seed,
                      progress=not args.no_progress)
    for record in scores["scores"]:
        print(f"{record['model']:<40} {record['region']:<4} r={record['value']:.3f} "
              f"ceiling={record['ceiling']:.3f} normalized={record['normalized']:.3f}")
    print(f"report: {args.out}/index.html")
    print(f"scores: {args.out}/scores.json")


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
        "demo", help="score models on the embedded simulated recording and write a report",
        description="Simulate a macaque recording, score network A and a random twin with a "
                    "shared-over-time ridge fit, write DIR/scores.json and DIR/index.html.",
    )
    demo.add_argument("--out", required=True, metavar="DIR", help="report directory")
    demo.add_argument("--n-stimuli", type=int, default=300, help="digits shown (default 300)")
    demo.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    demo.add_argument("--no-progress", action="store_true", help="hide progress bars")
    demo.set_defaults(run=_demo)
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
        args.run(args)
    except WorkbenchError as error:
        print(f"workbench {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
