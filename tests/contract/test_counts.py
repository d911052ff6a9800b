"""Counts, seeds, levels and devices given to the public API are checked where they enter: a
float, a bool, text or an out-of-range value is the project's error naming the option (it was
numpy's or torch's TypeError/ValueError/RuntimeError, or silently accepted), and numpy
integers are accepted."""

import functools
import re

import numpy as np
import pandas as pd
import pytest

from conftest import make_assembly
from workbench import ExtractionError, MetricError, WorkbenchError
from workbench.backend import resolve_device
from workbench.errors import check_count, check_interval
from workbench.metrics import PLSRegression, RidgeCV, encoding_score, split_half_ceiling, stimulus_folds
from workbench.metrics.dimensionality import participation_ratio_ci, principal_components
from workbench.metrics.latency import model_vs_brain
from workbench.models import PresentationProtocol, extract, zoo
from workbench.models.reductions import PCA, SparseRandomProjection
from workbench.models.training import train
from workbench.stats import bootstrap_encoding_ci, fdr, heldout_permutation_test, sign_flip_test
from workbench.stimuli import digits, from_image_files

RNG = np.random.default_rng(0)


@functools.lru_cache(maxsize=1)  # one fit serves every case (the tests only read it)
def _scored():
    return encoding_score(make_assembly(n_stimuli=40), make_assembly(n_stimuli=40, repetitions=2), n_splits=3)


def test_check_count_accepts_integers_and_names_what_it_refuses():
    for good in (3, np.int64(3), np.uint8(3)):
        check_count("n", good, 1)
    for bad in (1.5, True, np.bool_(True), "3", None, np.float64(3.0)):
        with pytest.raises(WorkbenchError, match=re.escape("n must be an integer, got")):
            check_count("n", bad)
    with pytest.raises(MetricError, match=re.escape("n must be an integer >= 2 (why), got 1")):
        check_count("n", 1, 2, "(why)", error=MetricError)


def test_check_interval_reads_its_interval_as_written():
    check_interval("x", 0.5)
    check_interval("x", np.float32(0.5))
    check_interval("x", 1, "(0, 1]")
    check_interval("x", 0, "[0, 1)")
    for value, interval in ((0, "(0, 1)"), (1, "(0, 1)"), (1, "[0, 1)"), (0, "(0, 1]"), (1.5, "[0, 1]"), (-0.1, "[0, 1]")):
        with pytest.raises(WorkbenchError, match=re.escape(f"x must be a number in {interval}, got {value!r}")):
            check_interval("x", value, interval)
    for bad in (float("nan"), True, "0.5", None, [0.5]):
        with pytest.raises(MetricError, match="x must be a number in"):
            check_interval("x", bad, error=MetricError)


@pytest.mark.parametrize("call, error, words", [
    (lambda: digits(1.5), WorkbenchError, "n_stimuli must be an integer"),
    (lambda: digits(True), WorkbenchError, "n_stimuli must be an integer"),
    (lambda: PresentationProtocol(1.5, 1), ExtractionError, "image_steps must be an integer"),
    (lambda: PresentationProtocol(2, True), ExtractionError, "blank_steps must be an integer"),
    (lambda: PresentationProtocol(2, 1, step_ms="10"), ExtractionError, "step_ms must be a number in (0, inf)"),
    (lambda: PresentationProtocol(2, 1, onset_ms=float("nan")), ExtractionError,
     "onset_ms must be a number in (-inf, inf), got nan"),  # NaN gave NaN time bins
    (lambda: extract(zoo.build("b", channels=(4, 8)), digits(2, size=32), batch_size=1.5, progress=False,
                     protocol=PresentationProtocol(2, 1)), ExtractionError, "batch_size must be an integer >= 1"),
    (lambda: split_half_ceiling(make_assembly(repetitions=4), n_splits=1.5), MetricError,
     "n_splits must be an integer >= 1"),
    (lambda: split_half_ceiling(make_assembly(repetitions=4), seed=-1), MetricError, "seed must be an integer >= 0"),
    # the folds of every encoding fit, and the draws of every resampling test
    (lambda: stimulus_folds(10, 2.5), MetricError, "n_splits must be an integer >= 2"),
    (lambda: encoding_score(make_assembly(), make_assembly(repetitions=2), n_splits=True), MetricError,
     "n_splits must be an integer >= 2"),
    (lambda: stimulus_folds(10, 2, seed=0.5), MetricError, "seed must be an integer >= 0"),
    (lambda: heldout_permutation_test(_scored(), n_permutations=1.5), MetricError, "n_permutations must be an integer"),
    (lambda: heldout_permutation_test(_scored(), n_permutations=True), MetricError, "n_permutations must be an integer"),
    (lambda: heldout_permutation_test(_scored(), n_permutations=10, seed=-1), MetricError, "seed must be an integer"),
    (lambda: heldout_permutation_test(_scored(), n_permutations=10, chunk_size=0), MetricError,
     "chunk_size must be an integer >= 1"),
    (lambda: bootstrap_encoding_ci(_scored(), n_boot=2.5), MetricError, "n_boot must be an integer >= 1"),
    (lambda: sign_flip_test(RNG.standard_normal(10), n_permutations="100"), MetricError, "n_permutations must be"),
    (lambda: participation_ratio_ci(RNG.standard_normal((20, 5)), n_boot=True), MetricError, "n_boot must be"),
    (lambda: principal_components(RNG.standard_normal((20, 5)), 1.5), MetricError, "n_components must be"),
    (lambda: principal_components(RNG.standard_normal((20, 5)), 0), MetricError, "n_components must be"),
    (lambda: PLSRegression(n_components=2.5).fit(RNG.standard_normal((20, 5)), RNG.standard_normal((20, 2))),
     MetricError, "n_components must be an integer >= 1"),
    (lambda: SparseRandomProjection(1.5), ExtractionError, "n_components must be an integer >= 1"),
    (lambda: SparseRandomProjection("64"), ExtractionError, "n_components must be an integer >= 1"),
    (lambda: PCA(10, n_fit=1), ExtractionError, "n_fit must be an integer >= 2"),
    # training and the zoo's constructors (epochs=-1 trained nothing and wrote a model card)
    (lambda: train("b", epochs=-1, memo=False), WorkbenchError, "epochs must be an integer >= 1"),
    (lambda: train("b", epochs=1, n_train=0, memo=False), WorkbenchError, "n_train must be an integer >= 1"),
    (lambda: train("b", seed=1.5, memo=False), WorkbenchError, "seed must be an integer >= 0"),
    (lambda: zoo.build("bl", channels=(0, 8)), WorkbenchError, "option 'channels': each count must be an integer >= 1, got 0"),
    (lambda: zoo.build("lindsay-ff", channels=(4.5, 8)), WorkbenchError, "each count must be an integer >= 1, got 4.5"),
    (lambda: zoo.build("bl", channels=8), WorkbenchError, "option 'channels': must be a list of positive integers"),
    (lambda: from_image_files(pd.DataFrame({"stimulus_id": ["a"], "filename": ["a.png"]}), background=float("nan")),
     WorkbenchError, "background must be a number in [0, 1], got nan"),
    (lambda: resolve_device("tpu"), WorkbenchError, "unknown device 'tpu' (fix: 'auto', 'cpu'"),
    (lambda: resolve_device("xla"), WorkbenchError, "the workbench runs on 'cpu', 'cuda' or 'mps'"),
    (lambda: zoo.build("bl", chanels=(4, 8)), WorkbenchError, "option 'chanels': not an option of 'bl'; it takes channels"),
    # levels and alphas: numbers inside their interval
    (lambda: bootstrap_encoding_ci(_scored(), n_boot=10, level="95%"), MetricError, "level must be a number in (0, 1)"),
    (lambda: participation_ratio_ci(RNG.standard_normal((20, 5)), n_boot=10, level=1.5), MetricError,
     "level must be a number in (0, 1)"),
    (lambda: model_vs_brain(_scored(), n_boot=2.5), MetricError, "n_boot must be an integer >= 1"),
    (lambda: model_vs_brain(_scored(), n_boot=5, level=0), MetricError, "level must be a number in (0, 1)"),
    (lambda: heldout_permutation_test(_scored(), n_permutations=10, clusters=True, cluster_alpha=-0.1), MetricError,
     "cluster_alpha must be a number in (0, 1)"),
    (lambda: fdr([0.01, 0.2], alpha=None), MetricError, "alpha must be a number in (0, 1)"),
    (lambda: RidgeCV(alphas=["1", "10"]).fit(RNG.standard_normal((20, 3)), RNG.standard_normal((20, 2))),
     MetricError, "alphas must be positive, finite numbers"),
    (lambda: RidgeCV(alphas=True).fit(RNG.standard_normal((20, 3)), RNG.standard_normal((20, 2))),
     MetricError, "alphas must be positive, finite numbers"),
])
def test_bad_counts_are_named_errors(call, error, words):
    with pytest.raises(error, match=re.escape(words)):
        call()


def test_numpy_integer_counts_still_work():
    assert len(digits(np.int64(3))) == 3
    assert PresentationProtocol(np.int64(2), np.int64(1)).n_steps == 3
    ceiling = split_half_ceiling(make_assembly(repetitions=4), n_splits=np.int64(2), seed=np.int64(1))
    assert ceiling.sizes["neuroid"] == 4
    assert len(stimulus_folds(10, np.int64(2), seed=np.int64(3))) == 2
    assert heldout_permutation_test(_scored(), n_permutations=np.int64(20), seed=np.int64(1)).n_permutations == 20
    assert SparseRandomProjection(np.int64(16)).n_components == 16
