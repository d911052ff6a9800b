"""Statistics: permutation nulls that reuse fits, multiple-comparison control, bootstrap CIs.

Every null is drawn from ``numpy.random.SeedSequence(seed)``: draws come in chunks, and
chunk ``i`` always uses the ``i``-th spawned child, so a null computed in pieces (on
several workers, or resumed) equals the one computed at once.
"""

from .bootstrap import bootstrap_encoding_ci
from .multiple import fdr, max_t_pvalues, pvalues_from_null
from .permutation import (PermutationResult, compare_encodings, heldout_permutation_test,
                          permutation_chunks)
from .resampling import paired_swap_test, shuffled_indices, sign_flip_test, spearman_permutation_test

__all__ = [
    "PermutationResult",
    "bootstrap_encoding_ci",
    "compare_encodings",
    "fdr",
    "heldout_permutation_test",
    "max_t_pvalues",
    "paired_swap_test",
    "permutation_chunks",
    "pvalues_from_null",
    "shuffled_indices",
    "sign_flip_test",
    "spearman_permutation_test",
]
