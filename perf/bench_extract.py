"""Cost of recording every default layer at every step vs the bare forward passes.

    python perf/bench_extract.py [--json OUT] [--model bl] [--n 1000] [--n-large 10000]
                                       [--device auto] [--batch-size 100] [--pool 4]
    python perf/bench_extract.py --model cornet-s --n 640 --n-large 3200 --n-raw 8 --batch-size 32

Measured in the same run, on the same model, stimuli, batches and device, with the default
protocol (10 image steps + 15 grey = 25 steps). Stimuli: digits rendered at the model's
declared input (32 px greyscale for the seed zoo, 224 px RGB ImageNet for CORnet), shifted
copies beyond the 1,797 originals so every id is unique; the RSS children of a 224 px model
read them as PNG files rendered batch by batch (``from_image_files(..., lazy=True)``), the
way a large stimulus set on disk is scored.

- ``forward_s``: the model called by its convention over all batches under ``inference_mode``
  (``model(frames)``; a static-recurrent model ``model(x)`` once) (the baseline);
- ``extract_s``: ``workbench.models.extract`` of all ``default_layers`` at all steps,
  pooled on the device to ``--pool`` x ``--pool`` per channel and streamed into a zarr
  store; ``overhead_vs_forward = extract_s / forward_s`` (best of ``--repeats``);
- ``overhead_raw_in_memory``: the same without reduction, held in memory, on ``--n-raw``
  stimuli (every unit: large, so fewer stimuli);
- ``rss_growth_small_to_large`` (also under its old name ``rss_growth_1k_to_10k``): peak RSS of a fresh process extracting ``--n-large`` stimuli
  into a store, relative to one extracting ``--n`` (the same code), minus 1 (medians over
  ``--rss-repeats`` processes; peak = VmHWM).
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _rss import peak_rss_gb


def options():
    """The command line (built before the heavy imports, so that --help is instant)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    parser.add_argument("--model", default="bl")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--n-large", type=int, default=10000)
    parser.add_argument("--n-raw", type=int, default=200)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--pool", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rss-repeats", type=int, default=3)
    parser.add_argument("--skip-rss", action="store_true", help="only the overhead figures")
    parser.add_argument("--rss-only", action="store_true", help="only the peak-RSS figures")
    parser.add_argument("--child-n", type=int, help=argparse.SUPPRESS)
    return parser


if __name__ == "__main__":
    options().parse_args()  # --help and a mistyped option answer at once, before the imports below

import numpy as np
import pandas as pd
import torch


def bench_stimuli(n, preprocessing=None, start=0):
    """Digit images ``start`` to ``n - 1``; beyond 1,797 the originals are shifted by 1, 2,
    ... pixels (only the digits of this range are rendered)."""
    from workbench.stimuli import Preprocessing, StimulusSet, digits

    preprocessing = preprocessing or Preprocessing()
    position = np.arange(start, n)
    needed = np.unique(position % 1797)
    base = digits(preprocessing=preprocessing, ids=[f"digit_{i:04d}" for i in needed])
    index = np.searchsorted(needed, position % 1797)
    shift = position // 1797
    images = base.images[index]
    for s in np.unique(shift[shift > 0]):
        chosen = shift == s
        images[chosen] = np.roll(images[chosen], (int(s), int(s)), axis=(2, 3))
    ids = [f"{base.stimulus_ids[i]}_shift{s}" for i, s in zip(index, shift)]
    return StimulusSet(np.ascontiguousarray(images), pd.DataFrame({"stimulus_id": ids}),
                       identifier=f"bench-digits(n={n})")


def file_stimuli(n, preprocessing, folder):
    """``bench_stimuli`` written as 8-bit RGB PNGs and read back lazily (bounded memory)."""
    from PIL import Image

    from workbench.stimuli import from_image_files

    folder = Path(folder)
    ids, names = [], []
    for start in range(0, n, 256):  # render in chunks: never the whole set in memory
        chunk = bench_stimuli(min(start + 256, n), preprocessing, start=start)
        for sid, image in zip(chunk.stimulus_ids, chunk.images):
            raw = preprocessing.unit_range(image[None])[0]
            Image.fromarray((raw.transpose(1, 2, 0) * 255).astype(np.uint8)).save(folder / f"{sid}.png")
            ids.append(sid)
            names.append(f"{sid}.png")
    table = pd.DataFrame({"stimulus_id": ids, "filename": names})
    table.attrs["path"] = str(folder / "set.csv")
    return from_image_files(table, preprocessing=preprocessing, lazy=True)


def call(model, batch, protocol, convention):
    """The bare forward pass(es) extraction makes for one batch."""
    if convention == "frames":
        return model(protocol.frames(batch))
    model(batch)
    if convention == "feedforward" and protocol.blank_steps:
        model(torch.zeros_like(batch))


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_forward(model, stimuli, protocol, batch_size, device):
    _sync(device)
    start = time.perf_counter()
    with torch.inference_mode():
        for i in range(0, len(stimuli), batch_size):
            batch = torch.from_numpy(stimuli.images[i:i + batch_size]).to(device)
            call(model, batch, protocol, model.convention)
    _sync(device)
    return time.perf_counter() - start


def time_extract(model, stimuli, protocol, batch_size, device, reduction, store):
    from workbench.models import extract

    _sync(device)
    start = time.perf_counter()
    extract(model, stimuli, protocol=protocol, batch_size=batch_size, device=device,
            reduction=reduction, store=store, progress=False)
    _sync(device)
    return time.perf_counter() - start


def build(name, device):
    from workbench.models import PresentationProtocol, zoo

    model = zoo.build(name, seed=0).eval().to(device)
    protocol = getattr(model, "default_protocol", None) or PresentationProtocol(unrolling=model.unrolling)
    return model, protocol


def child(args):
    """Fresh process: extract ``--child-n`` stimuli into a store, report peak RSS."""
    from workbench.backend import resolve_device
    from workbench.models import SpatialPool

    device = resolve_device(args.device)
    model, protocol = build(args.model, device)
    with tempfile.TemporaryDirectory() as tmp:
        if model.preprocessing.size > 64:  # a large stimulus set lives on disk: stream it
            stimuli = file_stimuli(args.child_n, model.preprocessing, tmp)
        else:
            stimuli = bench_stimuli(args.child_n, model.preprocessing)
        seconds = time_extract(model, stimuli, protocol, args.batch_size, device,
                               SpatialPool(args.pool), Path(tmp) / "acts.zarr")
    print(json.dumps({"peak_rss_gb": peak_rss_gb(), "seconds": seconds}))


def run_child(args, n):
    command = [sys.executable, __file__, "--child-n", str(n), "--model", args.model,
               "--device", args.device, "--batch-size", str(args.batch_size), "--pool", str(args.pool)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    args = options().parse_args()
    if args.child_n:
        return child(args)

    from workbench.backend import resolve_device

    device = resolve_device(args.device)
    model, protocol = build(args.model, device)
    result = {"device": str(device) + (f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else
                                       f" ({torch.get_num_threads()} threads)"),
              "model": args.model, "n_stimuli": args.n, "input": model.preprocessing.describe(),
              "convention": model.convention, "n_steps": protocol.n_steps}
    if not args.rss_only:
        result.update(timings(args, model, protocol, device))
    if not args.skip_rss:
        result.update(rss(args))
    if args.json:
        from workbench.storage import write_json

        write_json(args.json, result)


def timings(args, model, protocol, device):
    """Bare forward vs extraction, side by side (best of ``--repeats``)."""
    from workbench.models import SpatialPool

    stimuli = bench_stimuli(args.n, model.preprocessing)
    raw_stimuli = stimuli.subset(np.arange(min(args.n_raw, args.n)))
    time_forward(model, stimuli.subset(np.arange(min(args.batch_size, args.n))), protocol, args.batch_size, device)  # warm-up
    forward, extracted, forward_raw, extracted_raw = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            forward.append(time_forward(model, stimuli, protocol, args.batch_size, device))
            extracted.append(time_extract(model, stimuli, protocol, args.batch_size, device,
                                          SpatialPool(args.pool), Path(tmp) / f"acts{repeat}.zarr"))
            forward_raw.append(time_forward(model, raw_stimuli, protocol, args.batch_size, device))
            extracted_raw.append(time_extract(model, raw_stimuli, protocol, args.batch_size, device,
                                              None, None))
    result = {
        "layers": list(model.default_layers),
        "reduction": f"SpatialPool({args.pool}) into a zarr store",
        "forward_s": min(forward),
        "extract_s": min(extracted),
        "overhead_vs_forward": min(extracted) / min(forward),
        "overhead_raw_in_memory": min(extracted_raw) / min(forward_raw),
        "n_raw": len(raw_stimuli),
    }
    print(f"device {device}, model {args.model}, {args.n} stimuli x {protocol.n_steps} steps")
    print(f"bare forward {result['forward_s']:.2f} s, extraction {result['extract_s']:.2f} s: "
          f"overhead {result['overhead_vs_forward']:.3f}x (pooled, zarr store)")
    print(f"every unit, in memory ({len(raw_stimuli)} stimuli): overhead {result['overhead_raw_in_memory']:.3f}x")
    return result


def rss(args):
    """Peak RSS of fresh processes extracting ``--n`` and ``--n-large`` stimuli into a store."""
    result = {}
    # The allocator's peak varies by ~0.1 GB from run to run: median of fresh processes.
    small = [run_child(args, args.n)["peak_rss_gb"] for _ in range(args.rss_repeats)]
    large = [run_child(args, args.n_large)["peak_rss_gb"] for _ in range(args.rss_repeats)]
    growth = float(np.median(large) / np.median(small) - 1)
    result.update({"peak_rss_gb_small": float(np.median(small)), "peak_rss_gb_large": float(np.median(large)),
                   "peak_rss_gb_small_runs": small, "peak_rss_gb_large_runs": large, "n_large": args.n_large,
                   "rss_growth_1k_to_10k": growth, "rss_growth_small_to_large": growth})
    print(f"peak RSS (median of {args.rss_repeats} processes) {np.median(small):.3f} GB ({args.n}) -> "
          f"{np.median(large):.3f} GB ({args.n_large}): growth {100 * growth:.1f} %")
    return result


if __name__ == "__main__":
    main()
