"""The ``workbench`` command line."""

import argparse
import os
import sys

from . import __version__
from .errors import WorkbenchError


def _print_scores(scores):
    """One line per score record, failures on stderr; the exit code (1 if a task failed)."""
    from .scores import finite_number
    from .stats.permutation import p_floor_text

    for record in scores["scores"]:
        if record.get("claim"):  # a replication's claim
            low, high, p = (record.get(key) for key in ("ci_low", "ci_high", "p_value"))
            ci = f", 95% CI [{low:.3g}, {high:.3g}]" if finite_number(low) and finite_number(high) else ""
            p = f", p={p:.3g}" if finite_number(p) else ""
            print(f"{record['benchmark']:<24} {record['verdict']:<15} {record['claim']} "
                  f"(effect {record['value']:.3g}{ci}{p})")
        else:
            region = record.get("region") or ""
            p = p_floor_text(record.get("p_value"), record.get("null_n")).replace(" ", "")
            print(f"{record['model']:<24} {record['benchmark']:<36} {region:<4} value={record['value']:.3f} {p}")
    for failure in scores["failures"]:
        print(f"FAILED {failure['model']} x {failure['benchmark']}: {failure['error']}", file=sys.stderr)
    if scores.get("warnings"):
        print(f"{len(scores['warnings'])} data warning(s), listed in the scores file"
              + (" and the report" if "title" in scores else ""), file=sys.stderr)
    return 1 if scores["failures"] else 0


def _summarise(scores, out):
    status = _print_scores(scores)
    print(f"report: {out}/index.html")
    print(f"scores: {out}/scores.json")
    return status


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


def _replicate(args):
    from pathlib import Path

    from . import replications

    names = args.names or list(replications.REPLICATIONS)
    unknown = [name for name in names if name not in replications.REPLICATIONS]
    if unknown:
        raise WorkbenchError(f"unknown replication {unknown[0]!r}; available: {', '.join(replications.REPLICATIONS)}")
    settings = replications.FULL if args.full else replications.REDUCED
    cache = Path(args.cache)
    previous = replications.use_model_cache(cache / "models", progress=not args.no_progress)
    try:
        return _run_replications(args, names, settings, cache)
    finally:
        replications.use_model_cache(**previous)


def _run_replications(args, names, settings, cache):
    import time
    from dataclasses import asdict

    from . import replications
    from .storage import write_json

    size = "full" if args.full else "reduced"
    print(f"replicate: {', '.join(names)} at {size} size ({settings.n_images} images, {settings.epochs} epochs, "
          f"{settings.n_permutations} permutations, {settings.n_instances} network(s) per Lindsay claim, "
          f"{settings.n_stimuli}-image recording); models cached in {cache / 'models'}", flush=True)
    results = {"size": size, "settings": asdict(settings), "replications": {}, "failures": {}}
    for name in names:
        print(f"[{name}] running ({replications.SOURCES[name]})", flush=True)
        start = time.perf_counter()
        try:
            findings = replications.run_replication(name, full=args.full)
        except WorkbenchError as error:  # one replication's failure does not lose the others
            print(f"[{name}] FAILED: {error}", file=sys.stderr, flush=True)
            results["failures"][name] = str(error)
            if args.out:
                write_json(args.out, results)
            continue
        elapsed = time.perf_counter() - start
        for finding in findings:
            print(f"  {finding}  details: "
                  + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in finding.details.items() if not isinstance(v, dict)), flush=True)
        print(f"[{name}] {elapsed:.0f} s", flush=True)
        results["replications"][name] = {"seconds": round(elapsed, 1), "source": replications.SOURCES[name],
                                         "findings": [f.record().to_dict() for f in findings]}
        if args.out:  # after each replication: an interrupted run keeps what finished
            write_json(args.out, results)
    if args.out:
        print(f"findings: {args.out}")
    return 1 if results["failures"] else 0


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
    _progress_option(parser)


def _progress_option(parser):
    parser.add_argument("--no-progress", action="store_true", help="hide progress bars")


def _model_arguments(parser):
    """MODEL, --weights and the model's declarations, as extract and score take them."""
    parser.add_argument("model", metavar="MODEL",
                        help="zoo name (e.g. bl, cornet-s), torchvision:NAME / timm:NAME, or package.module:function")
    parser.add_argument("--weights", default=None, metavar="FILE", help="state dict (.pt, loaded weights_only; or .safetensors)")
    # the names of workbench.models.conventions.CONVENTIONS (not imported: --help stays instant)
    parser.add_argument("--convention", default=None,
                        choices=["frames", "frames_time_first", "video", "static_recurrent", "stepwise",
                                 "feedforward"],
                        help="how the model is called (default: declared by the model, else detected)")
    parser.add_argument("--input-size", type=int, default=None, metavar="PX",
                        help="input size (default: the model's; zoo 32, CORnet/torchvision/entry points 224)")
    parser.add_argument("--channels", default=None, choices=["grey", "rgb"], help="input channels (default: the model's)")
    parser.add_argument("--normalization", default=None, metavar="NAME|MEAN/SD",
                        help="input normalisation (default: the model's): set, imagenet, inception, unit, kinetics, "
                             "or the mean and sd it was trained with, e.g. 0.4914,0.4822,0.4465/0.2470,0.2435,0.2616")
    parser.add_argument("--model-option", action="append", type=_load_option, default=[], metavar="NAME=VALUE",
                        help="a keyword argument of the model's builder (a config option), repeatable; VALUE is "
                             "JSON or text, e.g. --model-option times=6 --model-option 'channels=[16, 32]'")
    parser.add_argument("--layers", default=None, metavar="A,B",
                        help="comma-separated module paths to record (default: the model's default_layers, "
                             "else every stage and block two levels deep)")
    parser.add_argument("--reset", default=None, metavar="METHOD",
                        help="a method of the model that clears the state it keeps between calls (e.g. reset, for "
                             "a spiking network), or a module:function called with the model (e.g. "
                             "snntorch.utils:reset), before every call of the model")
    parser.add_argument("--forward-option", action="append", type=_load_option, default=[], metavar="NAME=VALUE",
                        help="a keyword given to the model's forward on every call, repeatable; VALUE as for "
                             "--model-option, e.g. --forward-option n_steps=8 --forward-option return_all=true")


def _layer_list(text):
    """--layers: comma-separated module paths."""
    layers = [name.strip() for name in text.split(",") if name.strip()]
    if not layers:
        raise WorkbenchError(f"--layers: no layer named in {text!r} (e.g. --layers V1,IT)")
    return layers


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


def _model_spec(model, weights=None, train=None, seed=0, epochs=None, args=None):
    """A report model spec for a zoo name, ``torchvision:NAME``/``timm:NAME`` or a
    ``module:function`` entry point; ``train`` None keeps the report's default (zoo models
    without weights train by their recipe); ``args`` adds the declared input/convention."""
    from .models.hub import is_hub_name

    spec = {"name": model, "seed": seed}
    spec["entry_point" if ":" in model and not is_hub_name(model) else "zoo"] = model
    for key in ("convention", "input_size", "channels", "normalization", "reset"):
        if args is not None and getattr(args, key, None) is not None:
            spec[key] = getattr(args, key)
    if args is not None and getattr(args, "layers", None) is not None:
        spec["layers"] = _layer_list(args.layers)
    if args is not None and getattr(args, "model_option", None):
        spec["config"] = dict(args.model_option)
    if args is not None and getattr(args, "forward_option", None):
        spec["forward_options"] = dict(args.forward_option)
    if weights:
        spec["weights"] = weights
    if train is not None:
        spec["train"] = train
    if epochs is not None:
        spec["epochs"] = epochs
    return spec


# the command-line option behind each configuration key, for error messages
_OPTION_OF_KEY = {"zoo": "MODEL", "entry_point": "MODEL", "weights": "--weights", "epochs": "--epochs",
                  "convention": "--convention", "layers": "--layers", "input_size": "--input-size",
                  "channels": "--channels", "normalization": "--normalization", "reset": "--reset",
                  "stimulus_set": "--stimulus-set",
                  "name": "--benchmark", "path": "--path", "stimuli": "--stimuli", "seed": "--seed",
                  "n_permutations": "--permutations", "n_stimuli": "--n-stimuli", "batch_size": "--batch-size"}


def _option_error(error):
    """A configuration error as the command line's: the option behind the key, the problem."""
    for nested, option in (("load_options", "--load-option"), ("config", "--model-option"),
                           ("forward_options", "--forward-option")):  # NAME=VALUE options
        _, found, name = f".{error.key}".partition(f".{nested}")
        if found and (not name or name.startswith(".")):
            return WorkbenchError(f"{option}{' ' + name[1:] if name else ''}: {error.problem}")
    field = error.key.rsplit(".", 1)[-1].split("[", 1)[0]
    return WorkbenchError(f"{_OPTION_OF_KEY.get(field, error.key)}: {error.problem}")


def _load_option(text):
    """``NAME=VALUE`` of --load-option and --model-option: VALUE as JSON (numbers, lists,
    objects), else text."""
    import json

    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE (e.g. labels='{{\"f\": 0, \"j\": 1}}'), got {text!r}")
    try:
        parsed = json.loads(value)
    except ValueError:
        parsed = value
    return name.strip(), parsed


def _checked_model(model_spec):
    """A validated :class:`~workbench.models.ModelSpec`, errors naming the options."""
    from pathlib import Path

    from .errors import ConfigError
    from .models.spec import ModelSpec

    try:
        return ModelSpec.from_dict(model_spec, base=Path.cwd())
    except ConfigError as error:
        raise _option_error(error) from None


def _checked_config(model_spec, benchmark, settings=None):
    """The report's validation of one model and benchmark, errors naming the options."""
    from pathlib import Path

    from .errors import ConfigError
    from .report.config import parse_config

    data = {"models": [model_spec], "benchmarks": [benchmark], "settings": settings or {}}
    try:
        return parse_config(data, base=Path.cwd(), source="command line")
    except ConfigError as error:
        raise _option_error(error) from None


def _site_list(text):
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or comma-separated counts (88,168), got {text!r}")
    return counts[0] if len(counts) == 1 else counts


def _simulate(args):
    from pathlib import Path

    from .simulators import simulate_blur_fmri, simulate_human_ratings, simulate_macaque

    out = Path(args.out)
    # an option the dataset does not have is refused, not ignored
    applies = {"--stimulus-set": ("macaque",), "--scale": ("macaque",), "--sites": ("macaque",),
               "--image-size": ("macaque",), "--repetitions": ("macaque", "blur-fmri")}
    for option, kinds in applies.items():
        if getattr(args, option[2:].replace("-", "_")) is not None and args.kind not in kinds:
            raise WorkbenchError(f"{option} applies to {' and '.join(kinds)}, not to {args.kind}")
    if args.kind == "macaque":
        if out.suffix != ".nc":
            raise WorkbenchError(f"--out {out}: a BrainIO recording is a netCDF file, name it *.nc")
        options = {"n_stimuli": 200, "stimuli": args.stimulus_set or "digits"}
        if args.scale == "majajhong2015":
            from .simulators.macaque import MAJAJHONG2015

            options.update(MAJAJHONG2015)
        for key, value in (("n_stimuli", args.n), ("n_repetitions", args.repetitions), ("sites_per_region", args.sites)):
            if value is not None:
                options[key] = value
        # the images are written too, as a release's stimulus set is on disk (--stimuli reads
        # them); by default as the simulated brain saw them (its input size), so that a model
        # shown the files sees what the embedded route shows it
        from .simulators.macaque import DEFAULT_BRAIN

        image_size = DEFAULT_BRAIN["input_size"] if args.image_size is None else args.image_size
        simulation = simulate_macaque(out, seed=args.seed, progress=not args.no_progress, image_size=image_size,
                                      **options)
        sites = ", ".join(f"{int((simulation.rates.region == r).sum())} {r}" for r, _, _ in simulation.regions)
        print(f"macaque recording (BrainIO netCDF, 10 ms bins; {options['n_stimuli']} {options['stimuli']} x "
              f"{simulation.n_repetitions} repetitions; {sites} sites): {out}")
        print(f"stimulus set: {out.with_name(out.stem + '_stimuli.csv')} (RGB PNGs of {image_size} px in "
              f"{out.stem}_images/)")
    elif args.kind == "blur-fmri":
        simulation = simulate_blur_fmri(out, n_subjects=3 if args.n is None else args.n, seed=args.seed,
                                        **({} if args.repetitions is None else {"n_repetitions": args.repetitions}))
        print(f"blur fMRI (BData .h5 and NIfTI per subject): {out}/")
        for subject, path in simulation.bdata.items():
            print(f"  {subject}: {path}")
    else:
        if out.suffix not in (".sqlite", ".db", ".csv"):
            raise WorkbenchError(f"--out {out}: name the ratings file *.sqlite (psiTurk) or *.csv (tidy trials)")
        # ratings of images on disk, as a study's are: the Spoerer replication's noisy digits,
        # whose planted uncertainty grows with their noise (as sim-human.rt-uncertainty's)
        from .models.training import N_TEST
        from .replications import spoerer_stimuli
        from .simulators.images import write_stimulus_set

        n_images = 60 if args.n is None else args.n
        if not 2 <= n_images <= N_TEST:
            raise WorkbenchError(f"--n {n_images}: human ratings rate 2 to {N_TEST} images (the held-out "
                                 "digits)")
        stimuli, planted = spoerer_stimuli(n=n_images, seed=args.seed)
        simulate_human_ratings(out, uncertainty=planted, seed=args.seed, format="csv" if out.suffix == ".csv" else "sqlite")
        csv = write_stimulus_set(out, stimuli)
        print(f"human animal/non-animal ratings ({'CSV' if out.suffix == '.csv' else 'psiTurk sqlite'}): {out}")
        print(f"stimulus set: {csv} (greyscale PNGs of the rated noisy digits in {out.stem}_images/; planted "
              "uncertainty grows with each image's noise)")
        print("each participant's first 3 trials are practice (of images not in the set): "
              "--load-option practice_trials=3 drops them")
        print("simulated: these trial formats have no field to say so; keep the file name telling")
        return
    print("simulated: the file is marked simulated=True and reports that read it say so")


def _extract(args):
    from pathlib import Path

    import data_adapters

    from .models.extraction import extract
    from .models.reductions import SpatialPool
    from .stimuli import digits, from_image_files

    # unknown zoo names, bad entry points and missing weights, named by option
    spec = _checked_model(_model_spec(args.model, args.weights, args.train, args.seed, args=args))
    if not str(args.out).endswith(".zarr"):
        raise WorkbenchError(f"--out {args.out}: activations are written as a zarr store, name it *.zarr")
    if args.background is not None and not args.stimuli:
        raise WorkbenchError("--background applies to image files (--stimuli CSV); the digits have no transparency")
    model = spec.build(Path(args.cache))
    preprocessing = spec.preprocessing(model)  # the stimuli are rendered as the model declares
    stimuli = (from_image_files(data_adapters.load_stimulus_set(args.stimuli), preprocessing=preprocessing,
                                background=args.background)
               if args.stimuli else digits(args.digits, seed=args.seed, preprocessing=preprocessing))
    layers = spec.layers_of(model)  # --layers is in the spec
    activations = extract(model, stimuli, layers=layers, batch_size=args.batch_size, device=args.device,
                          progress=not args.no_progress, reduction=SpatialPool() if args.pool else None,
                          store=args.out, convention=spec.convention_of(model))
    print(f"activations {dict(activations.sizes)} from layers "
          f"{', '.join(dict.fromkeys(activations.layer.values.tolist()))} "
          f"(input {preprocessing.describe()}; {activations.attrs['extraction']['convention']}): {args.out}")


def _score(args):
    from pathlib import Path

    from .report.build import check_writable, data_warnings, split_results
    from .report.runner import execute, plan
    from .storage import write_json

    out = Path(args.out)
    if out.suffix != ".json":
        raise WorkbenchError(f"--out {out}: scores are written as JSON, name it *.json")
    benchmark = {"name": args.benchmark}
    if args.path:
        benchmark["path"] = args.path[0] if len(args.path) == 1 else list(args.path)
    if args.stimuli:
        benchmark["stimuli"] = args.stimuli
    if args.load_option:
        benchmark["load_options"] = dict(args.load_option)
    # zoo models train by their recipe unless --no-train or --weights (the report's default)
    spec = _model_spec(args.model, args.weights, False if args.no_train else None, args.seed, args.epochs, args=args)
    config = _checked_config(spec, benchmark, {"seed": args.seed, "n_permutations": args.permutations,
                                               "n_stimuli": args.n_stimuli, "stimulus_set": args.stimulus_set,
                                               "batch_size": args.batch_size})
    cache = Path(args.cache) if args.cache else out.parent / "workbench-cache"
    check_writable(out.parent)  # before minutes of work, not after
    check_writable(cache)
    results = execute(plan(config), cache, jobs=1, progress=not args.no_progress)
    records, failures = split_results(results)
    scores = {"scores": records, "failures": failures, "warnings": data_warnings(results), "settings": config.settings,
              "simulated": any(r["simulated"] for r in records)}
    write_json(out, scores)
    status = _print_scores(scores)
    print(f"scores: {out}")
    return status


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
    demo.add_argument("--models", default=None, help="comma-separated zoo names (default: one of every family); the simulator's "
                      "generating network is always added as the positive control")
    demo.add_argument("--no-replications", action="store_true", help="skip the replications")
    _execution_options(demo)
    demo.set_defaults(run=_demo)
    replicate = commands.add_parser(
        "replicate", help="re-run the five seed papers' claims (reduced size, or --full)",
        description="Run the seed papers' replications (workbench.replications: lindsay, spoerer, hartmann, "
                    "crcn, nayebi) and print each claim with its effect, p-value, details and verdict. "
                    "--full runs the sizes of replications.FULL (500 images, 8 epochs, 10,000 permutations, "
                    "4 networks per Lindsay claim; each replication under 10 min on 2 cores once trained). "
                    "Trained models are kept content-keyed in CACHE/models. Exit code 0 whether or not a "
                    "claim holds (a claim that fails is a result, not an error), 1 if a replication could "
                    "not run (the others still run), 2 for bad arguments.",
    )
    replicate.add_argument("names", nargs="*", metavar="NAME", help="replications to run (default: all five)")
    replicate.add_argument("--full", action="store_true", help="the full sizes (default: the reduced test sizes)")
    replicate.add_argument("--out", default=None, metavar="FILE.json", help="also write the findings here")
    replicate.add_argument("--cache", default="workbench-cache", metavar="DIR",
                           help="trained-model cache (default ./workbench-cache)")
    _progress_option(replicate)
    replicate.set_defaults(run=_replicate)
    report = commands.add_parser(
        "report", help="batch report: models x benchmarks from a TOML config",
        description="Run every (model, benchmark) task of FILE.toml (see README, 'Batch report'), "
                    "resuming from DIR/cache, and write DIR/scores.json, scores.csv, index.html, "
                    "figures/ and provenance.json. Exit code 1 if a task failed, 2 for a bad config. "
                    "Trust: a config's entry_point models (and plugin families) run their own Python "
                    "code when their task builds them, as running a Python script would; run only "
                    "configs whose code you trust. Validating and planning run none of it.",
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
    _progress_option(train)
    train.set_defaults(run=_train)

    simulate = commands.add_parser(
        "simulate", help="write a simulated dataset in a real release's file format",
        description="Write a simulator's dataset with planted ground truth in the same format as the "
                    "real release: macaque arrays as BrainIO netCDF (10 ms bins), the blur fMRI "
                    "experiment as BData .h5 + NIfTI per subject, human ratings as psiTurk sqlite or "
                    "tidy CSV. The netCDF and BData files are marked simulated.",
    )
    simulate.add_argument("kind", choices=["macaque", "blur-fmri", "human"], help="which dataset")
    simulate.add_argument("--out", required=True, metavar="PATH",
                          help="FILE.nc (macaque), DIR (blur-fmri), FILE.sqlite or FILE.csv (human)")
    simulate.add_argument("--n", type=int, default=None, metavar="N",
                          help="stimuli (macaque, default 200), subjects (blur-fmri, 3), images (human, 60)")
    simulate.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    simulate.add_argument("--stimulus-set", default=None, choices=["digits", "objects", "characters"],
                          help="macaque: digits, HvM-style RGB objects on natural backgrounds, or letters "
                               "rendered in 8 fonts (default digits)")
    simulate.add_argument("--scale", default=None, choices=["majajhong2015"],
                          help="macaque: the size of a real release: majajhong2015 = 3,200 objects, 88 V4 + "
                               "168 IT sites, 50 repetitions (6.5 GB, streamed to disk one repetition at a time)")
    simulate.add_argument("--sites", type=_site_list, default=None, metavar="N[,N]",
                          help="macaque: sites per region, one count or V4,IT (default 16)")
    simulate.add_argument("--repetitions", type=int, default=None, metavar="N",
                          help="trials per stimulus (macaque, default 20) or runs per image (blur-fmri, 2)")
    simulate.add_argument("--image-size", type=int, default=None, metavar="PX",
                          help="macaque: size of the stimulus PNGs written beside the recording (default: the "
                               "size the simulated brain saw them at, 32 px)")
    _progress_option(simulate)
    simulate.set_defaults(run=_simulate)

    extract = commands.add_parser(
        "extract", help="time-resolved activations of a model, streamed to a zarr store",
        description="Run MODEL (a zoo name or package.module:function) over a stimulus set and write "
                    "its layers' activations at every step (presentation x neuroid x time_bin) to "
                    "OUT.zarr, replaced atomically when complete. Open it with "
                    "workbench.models.open_activations.",
    )
    _model_arguments(extract)
    extract.add_argument("--out", required=True, metavar="STORE.zarr", help="zarr store to write")
    extract.add_argument("--train", action="store_true", help="train a zoo model by its recipe first (cached)")
    extract.add_argument("--stimuli", default=None, metavar="CSV",
                         help="stimulus-set CSV with stimulus_id and filename columns (default: digits)")
    extract.add_argument("--background", type=float, default=None, metavar="GREY",
                         help="grey level in [0, 1] of the page the images were shown on (1 = white): transparent "
                              "pixels are composited over it (without it, transparent images are an error)")
    extract.add_argument("--digits", type=int, default=200, metavar="N", help="digits to show without --stimuli")
    extract.add_argument("--pool", action="store_true", help="average each channel over space on the device")
    extract.add_argument("--batch-size", type=int, default=64)
    extract.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda...")
    extract.add_argument("--seed", type=int, default=0, help="model seed and digit draw (default 0)")
    extract.add_argument("--cache", default="workbench-cache", metavar="DIR",
                         help="trained-model cache (default ./workbench-cache)")
    _progress_option(extract)
    extract.set_defaults(run=_extract)

    score = commands.add_parser(
        "score", help="score one model on benchmarks (a report without the page)",
        description="Score MODEL on BENCHMARK (the names of 'workbench report'; real-file variants "
                    "take --path) and write OUT.json with the score records (value, CI, p). "
                    "Exit code 1 if the task failed, 2 for bad arguments.",
    )
    _model_arguments(score)
    score.add_argument("--benchmark", required=True, help="e.g. sim-macaque.IT.shared-time-ridge")
    score.add_argument("--out", required=True, metavar="FILE.json", help="scores file to write")
    score.add_argument("--path", default=None, nargs="+", metavar="PATH",
                       help="data file of a real-file benchmark (blur-fmri: one per subject, several allowed)")
    score.add_argument("--stimuli", default=None, metavar="CSV", help="stimulus-set CSV of a real-file benchmark")
    score.add_argument("--load-option", action="append", type=_load_option, default=[], metavar="NAME=VALUE",
                       help="an option of the data file's reader, repeatable; VALUE is JSON or text, e.g. "
                            "--load-option 'labels={\"f\": 0, \"j\": 1}' --load-option worker_column=subject")
    score.add_argument("--no-train", action="store_true", help="score a zoo model untrained (default: its recipe)")
    score.add_argument("--epochs", type=int, default=None, help="override the recipe's epochs")
    score.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    score.add_argument("--permutations", type=int, default=1000, help="permutation draws (default 1000)")
    score.add_argument("--n-stimuli", type=int, default=200, help="images in simulated data (default 200)")
    score.add_argument("--stimulus-set", default="digits", choices=["digits", "objects", "characters"],
                       help="images of simulated macaque data: digits, HvM-style RGB objects or rendered "
                            "letters (default digits)")
    score.add_argument("--batch-size", type=int, default=64, metavar="N",
                       help="images per forward pass (memory only; default 64)")
    score.add_argument("--cache", default=None, metavar="DIR", help="cache (default: workbench-cache beside OUT)")
    _progress_option(score)
    score.set_defaults(run=_score)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.run(args) or 0
    except WorkbenchError as error:
        print(f"workbench {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a disk fault outside the checked writes: one line, never a traceback
        where = f"{error.filename}: " if error.filename else ""
        print(f"workbench {args.command}: error: {where}{error.strerror or error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
