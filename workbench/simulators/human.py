"""Simulated animal / non-animal ratings in psiTurk sqlite or tidy CSV, with planted difficulty.

Each image ``i`` has a hidden uncertainty ``D_i ~ Uniform(0, 0.5)``; a participant answers
it correctly with probability ``1 - D_i``, so the expected proportion correct is
``1 - D_i`` and the expected D = 0.5 - |0.5 - PC| is ``D_i`` itself. Reaction times grow
with ``D_i`` (lognormal); answers slower than the participant's maximum response time
(500, 1000 or 2000 ms) are timeouts with no rt. Each participant first does practice
trials; a few participants never finish (psiTurk status 2) and one worker id appears
twice, as in real crowd-sourced data.
"""

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from workbench.errors import WorkbenchError, check_count
from workbench.storage import atomic_path

MAX_RT_CONDITIONS = (500, 1000, 2000)


@dataclass
class HumanSimulation:
    """What :func:`simulate_human_ratings` wrote and the truth it planted.

    ``uncertainty``: true D per ``stimulus_id`` (pandas Series). ``truth``: the correct
    answer per stimulus (1 = animal).
    """

    path: Path
    uncertainty: pd.Series
    truth: pd.Series
    practice_trials: int
    duplicate_worker: str
    n_incomplete: int
    seed: int


def simulate_human_ratings(path, n_images=60, n_workers=60, practice_trials=3, n_incomplete=3,
                           format="sqlite", seed=0, uncertainty=None):
    """Write simulated trials to ``path`` (psiTurk sqlite or CSV), atomically.

    ``uncertainty``: optional pandas Series of planted D in [0, 0.5] per ``stimulus_id``
    (e.g. tied to the images a model sees); by default ``n_images`` ids ``img_0000...``
    with D drawn uniformly.
    """
    if format not in ("sqlite", "csv"):
        raise WorkbenchError(f"format must be 'sqlite' or 'csv', got {format!r}")
    for name, value, minimum in (("n_workers", n_workers, 1), ("practice_trials", practice_trials, 0),
                                 ("n_incomplete", n_incomplete, 0), ("seed", seed, 0)):
        check_count(name, value, minimum)
    rng = np.random.default_rng(seed)
    if uncertainty is None:
        check_count("n_images", n_images, 2, "(two categories)")
        stimulus_ids = np.array([f"img_{i:04d}" for i in range(n_images)])
        uncertainty = rng.uniform(0.0, 0.5, n_images)
    else:
        if not isinstance(uncertainty, pd.Series) or uncertainty.index.has_duplicates:
            raise WorkbenchError("uncertainty must be a pandas Series with unique stimulus ids as index")
        values = uncertainty.to_numpy(dtype=np.float64)
        if not (np.isfinite(values).all() and (values >= 0).all() and (values <= 0.5).all()):
            raise WorkbenchError("planted uncertainty must lie in [0, 0.5] (D = 0.5 - |0.5 - PC|)")
        stimulus_ids = uncertainty.index.astype(str).to_numpy()
        uncertainty = values
        n_images = len(values)
    truth = np.arange(n_images) % 2
    participants = []
    for w in range(n_workers + n_incomplete):
        max_rt = int(rng.choice(MAX_RT_CONDITIONS))
        order = rng.permutation(n_images)
        if w >= n_workers:
            order = order[: n_images // 3]  # quit early
        trials = []
        for k in range(practice_trials):
            trials.append({"stimulus": f"practice_{k}", "true_response": 1, "response": 1,
                           "rt": 600.0, "max_rt": max_rt})
        for i in order:
            correct = rng.random() >= uncertainty[i]
            rt = float(np.exp(rng.normal(np.log(350 + 600 * uncertainty[i]), 0.25)))
            trials.append({"stimulus": stimulus_ids[i], "true_response": int(truth[i]),
                           "response": int(truth[i] if correct else 1 - truth[i]),
                           "rt": rt if rt <= max_rt else None, "max_rt": max_rt})
        worker = f"W{w:03d}" if w != n_workers - 1 else "W000"  # one worker takes part twice
        participants.append((worker, 3 if w < n_workers else 2, trials))

    path = Path(path)
    with atomic_path(path) as tmp:
        if format == "sqlite":
            tmp.unlink()  # sqlite wants to create the file itself
            with sqlite3.connect(tmp) as connection:
                connection.execute("CREATE TABLE turkdemo (uniqueid TEXT, workerid TEXT, status INTEGER, datastring TEXT)")
                connection.executemany("INSERT INTO turkdemo VALUES (?, ?, ?, ?)", [
                    (f"{worker}:{n}", worker, status,
                     json.dumps({"data": [{"current_trial": i, "trialdata": t} for i, t in enumerate(trials)]}))
                    for n, (worker, status, trials) in enumerate(participants)
                ])
            connection.close()
        else:
            rows = [{"worker": worker, "session": n, "stimulus_id": t["stimulus"], "truth": t["true_response"],
                     "response": t["response"], "rt_ms": t["rt"], "max_rt_ms": t["max_rt"]}
                    for n, (worker, status, trials) in enumerate(participants) if status == 3
                    for t in trials]
            pd.DataFrame(rows).to_csv(tmp, index=False)
    return HumanSimulation(
        path=path, uncertainty=pd.Series(uncertainty, index=stimulus_ids, name="uncertainty"),
        truth=pd.Series(truth, index=stimulus_ids, name="truth"), practice_trials=practice_trials,
        duplicate_worker="W000", n_incomplete=n_incomplete, seed=seed,
    )
