"""Batch execution: (model, benchmark) tasks, a content-keyed result cache, dask scale-out.

Each task's result is written atomically to ``CACHE/tasks/<key>.json`` once it finishes;
the key hashes everything that determines the result (the model's identity: its zoo
recipe, or the SHA-256 of its weights; the benchmark spec; the settings; the package
version). A run killed at any point resumes: finished tasks are read back, the others
recomputed, and the report is identical to an uninterrupted run's. Failed tasks are not
cached (a rerun retries them).

Execution: serially in this process (``jobs=1``), on a dask ``LocalCluster`` of ``jobs``
worker processes (one task per worker at a time), or on an existing cluster
(``scheduler="tcp://HOST:PORT"``). Every task runs with the same number of BLAS and torch
threads (``threads``, default 1), so the numbers do not depend on the scheduling: use
``jobs = cores`` to fill the machine. Trained zoo models
are prepared first (one task per model), so workers never train the same model twice.
"""

import hashlib
import contextlib
import importlib
import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .. import __version__
from ..errors import WorkbenchError
from ..storage import write_json
from .benchmarks import RUNNERS, parse_benchmark, run_replication


CACHE_MARK = "<cache>"


@dataclass(frozen=True)
class Task:
    """One (model, benchmark) pair; ``model`` is None for model-free benchmarks."""

    key: str
    model: dict
    benchmark: dict
    settings: dict

    @property
    def label(self):
        return f"{self.model['name'] if self.model else '-'} x {self.benchmark['name']}"


def _sha256_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _entry_point(spec):
    module_name, function_name = spec["entry_point"].split(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise WorkbenchError(f"model {spec['name']!r}: cannot import entry point {spec['entry_point']!r} "
                             f"({error})") from error
    return function


def build_model(spec, cache_dir):
    """The ``nn.Module`` of a model spec (training zoo models through the content-keyed cache)."""
    import torch

    from ..models import zoo
    from ..models.training import train_cached
    from ..models.weights import load_weights

    if "zoo" in spec:
        config = dict(spec.get("config", {}))
        if spec.get("train"):
            model, _ = train_cached(spec["zoo"], Path(cache_dir) / "models", seed=spec["seed"],
                                    epochs=spec["epochs"], config=config)
        else:
            model = zoo.build(spec["zoo"], seed=spec["seed"], **config)
    else:
        model = _entry_point(spec)(**spec.get("config", {}))
        if not isinstance(model, torch.nn.Module):
            raise WorkbenchError(f"model {spec['name']!r}: entry point returned {type(model).__name__}, "
                                 "not a torch.nn.Module")
    if spec.get("weights"):
        load_weights(model, spec["weights"])
    return model.eval()


def model_identity(spec):
    """What determines a model's weights, for cache keys (never the display name alone)."""
    identity = {k: v for k, v in spec.items() if k != "name"}
    if spec.get("weights"):
        identity["weights"] = _sha256_file(spec["weights"])
    if "entry_point" in spec:
        # the function's output is hashed, so an edited function is a new key
        from ..models.cache import _update_array

        digest = hashlib.sha256()
        model = _entry_point(spec)(**spec.get("config", {}))
        for name, tensor in sorted(model.state_dict().items()):
            _update_array(digest, name, tensor.detach().cpu().float().numpy())
        identity["parameters"] = digest.hexdigest()
    return identity


def plan(config):
    """The tasks of a configuration, in report order (benchmark-major)."""
    identities = {spec["name"]: model_identity(spec) for spec in config.models}
    tasks = []
    for benchmark in config.benchmarks:
        definition = parse_benchmark(benchmark["name"])
        specs = [None] if definition.model_free else config.models
        for spec in specs:
            payload = {"model": identities[spec["name"]] if spec else None, "benchmark": benchmark,
                       "settings": config.settings, "version": __version__}
            if benchmark.get("path"):
                payload["data"] = _sha256_file(benchmark["path"]) if Path(benchmark["path"]).is_file() else None
            key = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
            tasks.append(Task(key, spec, benchmark, dict(config.settings)))
    return tasks


@contextlib.contextmanager
def _limited_threads(threads):
    """BLAS and torch threads for one task, restored afterwards.

    Tasks run with a fixed thread count (1 by default) wherever they run: floating-point
    sums split over a different number of threads round differently, and a report must not
    depend on how its tasks were scheduled.
    """
    import threadpoolctl
    import torch

    previous = torch.get_num_threads()
    with threadpoolctl.threadpool_limits(threads):
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(previous)


def prepare_model(spec, cache_dir, threads=1):
    """Train (or find in the cache) a zoo model; returns its name."""
    with _limited_threads(threads):
        build_model(spec, cache_dir)
    return spec["name"]


def result_path(cache_dir, task):
    return Path(cache_dir) / "tasks" / f"{task.key}.json"


def run_task(task, cache_dir, threads=1):
    """Compute one task (or read it back); never raises: failures come back as results."""
    path = result_path(cache_dir, task)
    if path.exists():
        return {**json.loads(path.read_text()), "status": "cached"}
    with _limited_threads(threads):
        return _compute(task, cache_dir, path)


def _compute(task, cache_dir, path):
    start = time.perf_counter()
    base = {"key": task.key, "model": task.model["name"] if task.model else None,
            "benchmark": task.benchmark["name"]}
    try:
        definition = parse_benchmark(task.benchmark["name"])
        if definition.model_free:
            records, panel = run_replication(definition, task.settings, cache_dir)
        else:
            model = build_model(task.model, cache_dir)
            records, panel = RUNNERS[definition.family](definition, task.benchmark, model, task.model,
                                                        task.settings, cache_dir)
    except Exception as error:  # a failing task is reported and must not stop the others
        return {**base, "status": "error", "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(limit=6)}
    for record in records:
        if isinstance(record.get("data"), str):
            # simulated inputs live in the cache: name them relative to it, so a report
            # does not depend on where its directory is
            record["data"] = record["data"].replace(str(Path(cache_dir)), CACHE_MARK)
        record.update({"model": base["model"], "benchmark": base["benchmark"], "seed": task.settings["seed"],
                       "simulated": definition.simulated or bool(record.pop("simulated_data", False))})
    simulated = any(record["simulated"] for record in records) or definition.simulated
    result = {**base, "records": records, "panel": panel, "simulated": simulated}
    write_json(path, result)
    return {**result, "status": "ok", "seconds": time.perf_counter() - start}


def _client(jobs, scheduler):
    import dask
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    # dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also turns off
    # glibc's adaptive mmap threshold: every large temporary array is then mapped and
    # unmapped afresh (a 2-worker demo measured 13.7 M page faults and as much system as
    # user time). Unset, glibc adapts; the thread limits stay.
    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=40)
    return Client(cluster), cluster


def execute(tasks, cache_dir, jobs=1, scheduler=None, progress=True, threads=1):
    """Run tasks (skipping cached ones); returns results in task order.

    ``threads`` per task (default 1, so that results are identical however tasks are
    scheduled); parallelism comes from ``jobs`` worker processes running tasks side by side.
    """
    cache_dir = Path(cache_dir)
    results = {}
    pending = []
    for task in tasks:
        if result_path(cache_dir, task).exists():
            results[task.key] = run_task(task, cache_dir)
        else:
            pending.append(task)
    specs = [task.model for task in pending if task.model and task.model.get("train")]
    if task_needs_replication_models(pending):
        specs += list(replication_models().values())
    # one preparation per distinct training recipe (display names differ, weights do not)
    models = {}
    for spec in specs:
        identity = json.dumps({k: v for k, v in spec.items() if k != "name"}, sort_keys=True, default=list)
        models.setdefault(identity, spec)
    bar = tqdm(total=len(pending) + len(models), desc="report tasks", disable=not progress, unit="task")
    if scheduler is None and jobs <= 1:
        for spec in models.values():
            prepare_model(spec, cache_dir, threads)
            bar.update()
        for task in pending:
            results[task.key] = run_task(task, cache_dir, threads)
            bar.update()
    else:
        from dask.distributed import as_completed

        client, cluster = _client(jobs, scheduler)
        try:
            futures = [client.submit(prepare_model, spec, str(cache_dir), threads, pure=False)
                       for spec in models.values()]
            for future in as_completed(futures):
                future.result()
                bar.update()
            futures = {client.submit(run_task, task, str(cache_dir), threads, pure=False): task for task in pending}
            for future in as_completed(futures):
                results[futures[future].key] = future.result()
                bar.update()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    return [results[task.key] for task in tasks]


def task_needs_replication_models(tasks):
    return any(task.model is None and task.benchmark["name"].startswith("replication.") for task in tasks)


def replication_models():
    """Zoo specs the replications train (so they are prepared once, before the tasks)."""
    from ..replications import EPOCHS, SEED, SMALL

    names = ("lindsay-ff", "lindsay-predictive", "lindsay-feedback", "lindsay-lateral", "bl", "grucnn", "ccnn",
             "crcn", "crcn-ff", "convrnn")
    return {f"replication model {name}": {"name": f"replication model {name}", "zoo": name, "train": True,
                                          "seed": SEED, "epochs": EPOCHS,
                                          "config": {} if name.startswith("lindsay") else dict(SMALL)}
            for name in names}
