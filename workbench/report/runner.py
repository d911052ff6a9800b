"""Batch execution: (model, benchmark) tasks, a content-keyed result cache, dask scale-out.

Each task's result is written atomically to ``CACHE/tasks/<key>.json`` once it finishes;
the key (:mod:`workbench.keys`) hashes everything that determines the result: the model's
identity (:meth:`workbench.models.ModelSpec.identity`: its zoo recipe, the SHA-256 of its
weights, its code), the benchmark's identity (:meth:`workbench.benchmarks.Benchmark.identity`:
identifier, version, settings, the content of its input files) and the package versions.
An entry point's builder may load files of its own (``torch.load`` inside ``build()``),
which no key made before building can see: its result also records the state the model
built to, and is reused only while the model still builds to it. A run killed at any point
resumes: finished tasks are read back, the others recomputed, and the report is identical
to an uninterrupted run's. Failed tasks are not cached (a rerun retries them).

Execution: serially in this process (``jobs=1``), on a dask ``LocalCluster`` of ``jobs``
worker processes (one task per worker at a time), or on an existing cluster
(``scheduler="tcp://HOST:PORT"``). Every task runs with the same number of BLAS and torch
threads (``threads``, default 1), so the numbers do not depend on the scheduling: use
``jobs = cores`` to fill the machine. Trained zoo models
are prepared once each (one task per training recipe), and a task starts when the models it
needs are ready, so workers never train the same model twice.
"""

import json
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .. import __version__
from ..backend import fixed_threads
from ..errors import ConfigError, DataWarning
from ..keys import content_key, package_code_digest
from ..storage import remove_stale_temporaries, write_json


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


def benchmark_of(spec, settings, cache_dir=None):
    """The :class:`~workbench.benchmarks.Benchmark` of a config's benchmark spec."""
    from ..benchmarks import get

    return get(spec["name"], path=spec.get("path"), stimuli=spec.get("stimuli"), load_options=spec.get("load_options"),
               seed=settings["seed"],
               n_permutations=settings["n_permutations"], n_stimuli=settings["n_stimuli"], cache_dir=cache_dir,
               stimulus_set=settings.get("stimulus_set", "digits"), batch_size=settings.get("batch_size", 64))


def plan(config):
    """The tasks of a configuration, in report order (benchmark-major)."""
    import torch

    from ..models.spec import ModelSpec

    identities = {}
    for index, spec in enumerate(config.models):
        try:
            identities[spec["name"]] = ModelSpec.from_dict(spec).identity()
        except ConfigError as error:
            raise error.under(f"models[{index}]") from None
    import data_adapters

    import workbench

    # the code of the whole pipeline (loaders to statistics): a fix must never be served a
    # result computed before it
    versions = {"workbench": __version__, "torch": torch.__version__,
                "code": package_code_digest(workbench, data_adapters)}
    tasks = []
    for spec in config.benchmarks:
        benchmark = benchmark_of(spec, config.settings)
        identity = benchmark.identity()  # hashes its input files: once, not once per model
        for model in [None] if benchmark.model_free else config.models:
            key = content_key({"model": identities[model["name"]] if model else None,
                               "benchmark": identity, "versions": versions})
            tasks.append(Task(key, model, spec, dict(config.settings)))
    return tasks


def prepare_model(spec, cache_dir, threads=1):
    """Train (or find in the cache) a zoo model; returns its name."""
    import dask

    from ..models.spec import ModelSpec

    with fixed_threads(threads), dask.config.set(scheduler="synchronous"):
        ModelSpec.from_dict(spec).build(cache_dir)
    return spec["name"]


MAX_WARNINGS = 20  # kept per task


def result_path(cache_dir, task):
    return Path(cache_dir) / "tasks" / f"{task.key}.json"


def model_state(spec, cache_dir, memo=None):
    """The state digest of an entry-point model as it builds now
    (:meth:`workbench.models.ModelSpec.state_digest`), None for others or when it does not
    build (the task then fails and says why); ``memo`` keeps one per model name."""
    from ..models.spec import ModelSpec

    if not spec or not spec.get("entry_point"):
        return None
    if memo is not None and spec["name"] in memo:
        return memo[spec["name"]]
    model_spec = ModelSpec.from_dict(spec)
    try:
        digest = model_spec.state_digest(model_spec.build(cache_dir))
    except Exception:  # noqa: BLE001 - the user's builder: the task reports the failure when it runs
        digest = None
    if memo is not None:
        memo[spec["name"]] = digest
    return digest


def still_valid(cached, task, cache_dir, memo=None):
    """Whether a cached result still holds: for an entry-point model, its builder must give
    the state it gave then (a weights file it loads itself may have changed)."""
    if not task.model or not task.model.get("entry_point"):
        return True
    recorded = cached.get("model_state")
    return recorded is not None and recorded == model_state(task.model, cache_dir, memo)


def run_task(task, cache_dir, threads=1):
    """Compute one task (or read it back); never raises: failures come back as results."""
    path = result_path(cache_dir, task)
    cached = read_cached(path)
    states = {}  # an entry-point model built once here: to check a cached result, then to record
    if cached is not None and still_valid(cached, task, cache_dir, states):
        return {**cached, "status": "cached"}
    import dask

    # A task is one unit of work on its worker's fixed threads: dask arrays inside it (a lazily
    # read recording or feature store) compute here, never as subtasks on the report's own
    # cluster, where they queued behind the trainings and left their task waiting (measured:
    # 200 s per 6 s macaque task)
    with fixed_threads(threads), dask.config.set(scheduler="synchronous"):
        return _compute(task, cache_dir, path, states)


def read_cached(path):
    """A finished task's result, or None when there is none or it cannot be read (a damaged
    entry is recomputed, never trusted)."""
    try:
        result = json.loads(Path(path).read_text())
    except (OSError, ValueError, RecursionError):  # missing, unreadable, not JSON, nested too deep
        return None
    return result if isinstance(result, dict) and "records" in result else None


def _compute(task, cache_dir, path, states=None):
    start = time.perf_counter()
    base = {"key": task.key, "model": task.model["name"] if task.model else None,
            "benchmark": task.benchmark["name"]}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", DataWarning)
            state = model_state(task.model, cache_dir, states)
            benchmark = benchmark_of(task.benchmark, task.settings, cache_dir)
            scores, panel = benchmark.run(task.model)
    except Exception as error:  # a failing task is reported and must not stop the others
        return {**base, "status": "error", "error": f"{type(error).__name__}: {error}",
                "traceback": traceback.format_exc(limit=6)}
    finally:
        for warning in caught:  # still shown where the task ran, as without the record
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    # what the data loaders warned about (stimuli left out, missing values, overlapping
    # events) goes into the result, so the report shows it, resumed runs included
    notes = list(dict.fromkeys(str(w.message)[:1000] for w in caught if issubclass(w.category, DataWarning)))
    records = []
    for score in scores:
        record = score.replace(model=base["model"], benchmark=base["benchmark"], benchmark_version=benchmark.version,
                               seed=task.settings["seed"],
                               simulated=bool(benchmark.simulated or score.simulated)).to_dict()
        if isinstance(record.get("data"), str):
            # simulated inputs live in the cache: name them relative to it, so a report
            # does not depend on where its directory is
            record["data"] = record["data"].replace(str(Path(cache_dir)), CACHE_MARK)
        records.append(record)
    simulated = any(record["simulated"] for record in records) or benchmark.simulated
    result = {**base, "records": records, "panel": panel, "simulated": simulated,
              **({"model_state": state} if state is not None else {}),
              **({"warnings": notes[:MAX_WARNINGS]} if notes else {})}
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
    # A task that trains sets torch to TRAINING_THREADS threads; OpenMP threads that spin while
    # they wait then steal the cores of the worker beside them (two 2-thread trainings side by
    # side on 2 cores ran 5-6x slower each than one alone, 1.4x with passive waiting).
    environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=40)
    return Client(cluster), cluster


def _recipe(spec):
    """What a model's training depends on (display names and input sizes differ, weights do
    not): two specs with the same recipe are trained once."""
    from ..models.spec import ModelSpec

    model = ModelSpec.from_dict(spec)
    return json.dumps({"zoo": model.zoo, "seed": model.seed, "epochs": model.epochs, "config": model.config},
                      sort_keys=True, default=list)


def execute(tasks, cache_dir, jobs=1, scheduler=None, progress=True, threads=1):
    """Run tasks (skipping cached ones); returns results in task order.

    ``threads`` per task (default 1, so that results are identical however tasks are
    scheduled); parallelism comes from ``jobs`` worker processes running tasks side by side.
    On dask, the workers train the models too (each once, on its fixed training threads),
    and a task starts as soon as the models it needs are trained.
    """
    cache_dir = Path(cache_dir)
    remove_stale_temporaries(cache_dir / "tasks")  # results a killed run was writing
    results = {}
    pending = []
    states = {}  # each entry-point model built once to check its cached results
    for task in tasks:
        cached = read_cached(result_path(cache_dir, task))
        if cached is not None and still_valid(cached, task, cache_dir, states):
            results[task.key] = {**cached, "status": "cached"}
        else:
            pending.append(task)
    # the models each pending task needs, and one preparation per distinct training recipe
    required = {spec["name"]: benchmark_of(spec, pending[0].settings).required_models()
                for spec in {task.benchmark["name"]: task.benchmark for task in pending}.values()}
    needs, models = {}, {}
    for task in pending:
        specs = ([task.model] if task.model and task.model.get("train") else []) + required[task.benchmark["name"]]
        recipes = {}
        for spec in specs:
            recipes.setdefault(_recipe(spec), spec)
        needs[task.key] = list(recipes)
        for recipe, spec in recipes.items():
            models.setdefault(recipe, spec)
    # no time estimate: trainings take tens of seconds and most tasks one, so tqdm's rate-based
    # estimate said 28 minutes for a 5-minute demo
    bar = tqdm(total=len(pending) + len(models), desc=f"training {len(models)} models" if models else "scoring",
               disable=not progress, unit="task", bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
    if scheduler is None and jobs <= 1:
        for spec in models.values():
            bar.set_postfix_str(f"training {spec.get('name', '')}")
            prepare_model(spec, cache_dir, threads)
            bar.update()
        bar.set_description("scoring")
        bar.set_postfix_str("")
        for task in pending:
            results[task.key] = run_task(task, cache_dir, threads)
            bar.update()
    else:
        client, cluster = _client(jobs, scheduler)
        try:
            _run_on_dask(client, models, pending, needs, cache_dir, threads, results, bar)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    bar.close()
    return [results[task.key] for task in tasks]


def _run_on_dask(client, models, pending, needs, cache_dir, threads, results, bar):
    """Trainings and tasks on the cluster's workers, one per worker thread at a time.

    The order is chosen here, not left to dask's queues (which ran short tasks on one worker
    while trainings waited on the other): trainings first, in the order given (the simulated
    brain, which every simulated macaque task needs, leads), then the ready tasks, model-free
    ones first (the replications run for tens of seconds: started last, they would leave a
    worker idle at the end). The workers train, not this process, so that a task starts as
    soon as its models exist (the 2-core demo: 6 min 2 s with training here first, 5 min 5 s).
    """
    from dask.distributed import as_completed

    slots = max(1, sum(client.nthreads().values()))
    trainings = list(models.items())
    waiting = sorted(pending, key=lambda task: task.model is not None)  # stable: model-free first
    trained, running = set(), {}
    done = as_completed()

    def start_next():
        if trainings:
            identity, spec = trainings.pop(0)
            future = client.submit(prepare_model, spec, str(cache_dir), threads, pure=False)
            running[future] = ("trained", identity, spec.get("name", ""))
        else:
            task = next((task for task in waiting if trained.issuperset(needs[task.key])), None)
            if task is None:
                return False
            waiting.remove(task)
            future = client.submit(run_task, task, str(cache_dir), threads, pure=False)
            running[future] = ("scored", task, task.label)
        done.add(future)
        return True

    def now():
        return "now " + ", ".join(f"{'training' if kind == 'trained' else 'scoring'} {label}"
                                  for kind, _, label in running.values())

    while len(running) < slots and start_next():
        pass
    bar.set_postfix_str(now())
    for future in done:
        kind, what, label = running.pop(future)
        if kind == "trained":
            future.result()  # a model that cannot be trained stops the report, as in serial runs
            trained.add(what)
            if not trainings and all(entry[0] == "scored" for entry in running.values()):
                bar.set_description("scoring")
        else:
            results[what.key] = future.result()
        while len(running) < slots and start_next():
            pass
        bar.set_postfix_str(f"{kind} {label}; {now()}")
        bar.update()
    if waiting:  # unreachable unless a task needs a model no training provides
        raise RuntimeError(f"{len(waiting)} tasks never became ready")
