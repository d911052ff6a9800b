"""Memory preflight: a task's estimated peak memory, said before the work and refused when
it cannot fit.

The estimate is the resident memory when the task starts (libraries, the recording, the
model) plus the largest of its stages:

- extraction, *measured* on one batch (:func:`workbench.models.memory.probe_extraction`);
- the encoding fits (shared-over-time ridge: the float64 and float32 copies of features and
  responses, the per-atom moments, the eigensystems, the predictions), by formula;
- the held-out permutation test (standardised copies, a chunk of null draws, the cluster
  pass), by formula.

The formulas count the arrays the code allocates; ``perf/bench_recording.py`` compares the
estimate with the measured peak (``preflight_error``).
"""

from dataclasses import dataclass, field

from ..errors import WorkbenchError
from ..metrics.ridge import side_by_side_bytes

GB = 1e9


class PreflightError(WorkbenchError):
    """A task would need more memory than the machine has; the message names what lowers it."""


def recording_bytes(n_stimuli, n_cells, block_mb=64):
    """Peak bytes of averaging a lazily opened recording and its variance-components ceiling:
    per-stimulus float64 sums and sums of squares, their quotients and one block."""
    return n_stimuli * n_cells * 8 * 4 + n_stimuli * n_cells * 4 + 3 * block_mb * 2**20


def encoding_bytes(n_stimuli, n_bins, n_features, n_targets, n_folds=10, n_inner=3, split_half=True):
    """Peak bytes of one :func:`~workbench.metrics.encoding_score` (shared over time)."""
    samples = n_stimuli * n_bins
    data = samples * (n_features * (8 + 4) + n_targets * (8 + 4))  # float64 inputs, float32 prepared copies
    atoms = n_folds * n_inner + (n_inner if n_folds >= 4 else 0)  # + each inner label's kept total
    moments = atoms * (n_features ** 2 + n_features * n_targets) * 4
    systems = 12 * n_features ** 2 * 8 + n_features ** 2 * 4  # Gram, eigenvectors, error terms (M, M', K)
    systems += side_by_side_bytes(n_features, n_targets)  # a second worker's scratch arrays (RidgeCV n_jobs)
    dual = min(samples, n_features) < n_features  # more features than samples: n x n kernels instead
    if dual:  # prepared and solved in float64 (workbench.metrics.ridge._KernelSystem)
        data += samples * (n_features + n_targets) * 4
        moments = 0
        systems = 3 * samples * n_features * 8 + 6 * samples ** 2 * 8
    results = samples * n_targets * 8 * (3 + int(split_half)) * 2  # predictions, targets; xarray copies
    return data + moments + systems + results


def mapping_bytes(n_stimuli, n_steps, n_layers, sketch, n_features, n_sites, n_region_sites, n_folds=5):
    """Peak bytes of :func:`~workbench.metrics.map_layers_to_regions` on top of the extracted
    features: their ``sketch``-component copy (every layer), one layer's copy at a time, and
    the larger of the choosing fits (sketch, all sites, mapping half) and the scoring fit
    (``n_features``, the other half, ``n_region_sites``: the sites of the regions scored
    together, as all regions committed to one layer are; all sites at worst)."""
    copy = n_stimuli * sketch * n_layers * n_steps * 4
    choose = n_stimuli * sketch * n_steps * 4 * 1.5 + encoding_bytes(n_stimuli // 2, n_steps, sketch, n_sites, n_folds)
    score = n_stimuli * n_features * n_steps * 4 * 1.5 + encoding_bytes(n_stimuli // 2, n_steps, n_features,
                                                                          n_region_sites, n_folds)
    return copy + max(choose, score)


def heldout_test_bytes(n_heldout, n_cells, n_sites, n_permutations, chunk_size=1000, clusters=True):
    """Peak bytes of :func:`~workbench.stats.heldout_permutation_test`."""
    copies = n_heldout * n_cells * (8 * 4 + 4 * 2)  # flat float64, standardised, float32
    # the chunk being tallied, its group summary, and the next chunk, drawn meanwhile
    null = min(chunk_size, n_permutations) * n_cells * (4 + 8 + 4)
    if clusters:
        null += min(chunk_size, n_permutations) * n_cells * 4 + n_permutations * n_sites * 8
    return copies + null


@dataclass
class MemoryEstimate:
    """Bytes above ``baseline`` (the resident memory when the task started) per stage."""

    baseline: float
    stages: dict = field(default_factory=dict)
    measured: bool = True  # False where the extraction could not be probed

    @property
    def peak(self):
        return self.baseline + max(self.stages.values(), default=0.0)

    def describe(self):
        parts = ", ".join(f"{name} +{value / GB:.2f}" for name, value in self.stages.items())
        note = "" if self.measured else " (extraction not measured on this system)"
        return f"estimated peak memory {self.peak / GB:.2f} GB ({self.baseline / GB:.2f} GB held; {parts}){note}"

    def check(self, available, fixes):
        """Raise :class:`PreflightError` naming ``fixes`` when the peak exceeds ``available``."""
        if available is not None and self.peak > available:
            stage = max(self.stages, key=self.stages.get)
            raise PreflightError(f"{self.describe()} exceeds the {available / GB:.2f} GB available; "
                                 f"the largest stage is {stage} (fix: {fixes[stage]})")
        return self
