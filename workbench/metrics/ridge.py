"""Ridge regression with one penalty per target, solved from sufficient statistics.

Why sufficient statistics: every quantity ridge cross-validation needs (training fits for
every alpha, held-out squared errors for every alpha and target) is a function of the
per-group moments ``n, sum x, sum y, X'X, X'Y, sum y**2``. The data are read once to form
those moments per *atom* (a group of stimuli); a training or validation set is a sum of
atoms, so every inner and outer fold is a few additions of ``p x p`` matrices, one
eigendecomposition, and GEMMs whose size does not depend on the number of samples.
Stacked stimulus x time-bin samples of one stimulus always stay in one atom, so no image
is ever in both a training and a validation set.

Selection follows the usual rule (the same as himalaya's default): per target, the alpha
with the best mean over inner folds of the fold's mean squared error (``scoring="mse"``)
or R^2 (``scoring="r2"``); ties go to the larger alpha. ``cv="gcv"`` instead uses
generalised cross-validation on the training set (closed form, no inner folds; it treats
stacked samples as independent, so grouped inner CV is the default).
"""

import copy
import warnings

import numpy as np
import torch
import pandas as pd

from ..backend import SideBySide, Workspace, get_backend
from ..errors import MetricError, check_finite_columns
from .folds import deal_round_robin, fold_labels, stimulus_folds

DEFAULT_ALPHAS = np.logspace(-2, 5, 15)

# The most memory a second worker's scratch arrays may take for a fit to run its pieces side
# by side (RidgeCV n_jobs): more than that, and they run one after the other.
SIDE_BY_SIDE_MAX_BYTES = 2**28


def side_by_side_bytes(n_features, n_targets):
    """Bytes that running a primal fit's pieces two at a time adds (the second worker's
    ``p x p`` and ``p x t`` scratch arrays and a second fold's training system: measured
    63-70 p^2 + 40-105 p t bytes), or 0 where that would exceed
    :data:`SIDE_BY_SIDE_MAX_BYTES` and they run one at a time."""
    extra = 80 * n_features ** 2 + 112 * n_features * n_targets
    return extra if extra <= SIDE_BY_SIDE_MAX_BYTES else 0


# Largest block of per-atom Grams (bytes): below the allocator's mmap threshold (32 MB, see
# workbench.backend.reuse_freed_memory), a freed block goes back to the heap and the next fit
# reuses its pages. One block for all atoms (60 MB for 15 atoms of 1,024 features) came from
# mmap, new pages for every fit: 15,000 page faults, 12 ms of a 1.4 s fit.
_ATOM_BLOCK_BYTES = 24 * 2**20


class _AtomStack:
    """Equal-shaped arrays, one per atom, indexed like a stacked array (``stack[atom]``) but
    held in blocks of at most :data:`_ATOM_BLOCK_BYTES` each (one block when an atom is
    larger)."""

    def __init__(self, backend, count, shape):
        per_atom = int(np.prod(shape)) * np.dtype(backend.dtype_name).itemsize
        self.per_block = max(1, _ATOM_BLOCK_BYTES // max(1, per_atom))
        self.blocks = [backend.empty((min(self.per_block, count - start),) + tuple(shape))
                       for start in range(0, count, self.per_block)]
        self.shape = (count,) + tuple(shape)

    def __getitem__(self, atom):
        return self.blocks[atom // self.per_block][atom % self.per_block]

    def sum(self, axis=0):
        """The sum over atoms (the only axis summed: ``axis`` 0)."""
        if axis != 0:
            raise ValueError("an atom stack is summed over its atoms only (axis=0)")
        total = self.blocks[0].sum(0)
        for block in self.blocks[1:]:
            total += block.sum(0)
        return total


class Moments:
    """Per-atom sufficient statistics (backend arrays, leading axis = atom).

    ``n`` (A,), ``sx`` (A, p), ``sy`` (A, t), ``G`` = X'X (A, p, p), ``C`` = X'Y (A, p, t),
    ``yy`` = sum of y**2 (A, t). ``G`` and ``C`` may be :class:`_AtomStack` s (indexed and
    summed over atoms the same way).
    """

    fields = ("n", "sx", "sy", "G", "C", "yy")

    def __init__(self, n, sx, sy, G, C, yy):
        self.n, self.sx, self.sy, self.G, self.C, self.yy = n, sx, sy, G, C, yy
        self.n_targets = C.shape[-1]
        self._grand = [getattr(self, name).sum(0) for name in self.fields]
        self._kept = []  # (mask, total) of keep_totals
        self._pair_parts = None  # see _pair
        self._forks = {}  # slot or lane -> view with arrays of its own (for_slot, for_lane)

    @classmethod
    def from_data(cls, backend, X, Y, atoms, n_atoms):
        """Moments of ``X`` ``(S, T, p)`` and ``Y`` ``(S, T, t)`` per atom of stimuli.

        ``atoms`` ``(S,)`` gives each stimulus's atom in ``[0, n_atoms)``; all T samples
        of a stimulus go to its atom. Stimuli sorted by atom (as :meth:`RidgeCV._prepare`
        writes them) are read in place, a block per atom; otherwise each atom's rows are
        gathered into a copy first.
        """
        p, t = X.shape[-1], Y.shape[-1]
        atoms = np.asarray(atoms)
        in_order = bool(np.all(atoms[1:] >= atoms[:-1]))
        bounds = np.searchsorted(atoms, np.arange(n_atoms + 1)) if in_order else None
        # the Grams and cross-products are written in place into blocks of atoms (stacking
        # them after copied every atom's p x p Gram once more)
        G, C = _AtomStack(backend, n_atoms, (p, p)), _AtomStack(backend, n_atoms, (p, t))
        stats = {name: [] for name in ("n", "sx", "sy", "yy")}
        for atom in range(n_atoms):
            rows = slice(bounds[atom], bounds[atom + 1]) if in_order else backend.index(np.flatnonzero(atoms == atom))
            Xa = X[rows].reshape(-1, p)
            Ya = Y[rows].reshape(-1, t)
            stats["n"].append(float(Xa.shape[0]))
            stats["sx"].append(Xa.sum(0))
            stats["sy"].append(Ya.sum(0))
            backend.matmul(Xa.T, Xa, out=G[atom])
            backend.matmul(Xa.T, Ya, out=C[atom])
            stats["yy"].append((Ya * Ya).sum(0))
        n = backend.asarray(np.asarray(stats.pop("n")))
        moments = cls(n, G=G, C=C, **{name: backend.stack(values) for name, values in stats.items()})
        moments.backend = backend
        # the p x p temporaries of every fold (training and validation sums, rotations,
        # eigenvectors, error terms) are written into the same few arrays, fold after fold
        moments.workspace = Workspace(backend)
        return moments

    def training(self, mask):
        """The moments of an outer training set (the atoms where ``mask``), kept intact for
        :meth:`system_of` and :meth:`inner_system`."""
        return self.total(mask, into="outer")

    def system_of(self, training, standardize):
        """The training system (Gram eigendecomposition) of :meth:`training`'s moments."""
        return _TrainingSystem(self.backend, training, standardize, self.workspace, "outer")

    def system(self, mask, standardize):
        """The training system of the atoms where ``mask``."""
        return self.system_of(self.training(mask), standardize)

    def for_slot(self, slot):
        """These moments with scratch arrays of their own for worker ``slot`` of a
        :class:`~workbench.backend.SideBySide` (slot 0: these), for validation sets and
        inner systems. The atoms, totals and kept totals are shared and only read."""
        return self._view(slot)

    def for_lane(self, lane):
        """These moments with arrays of their own for the outer training set and system of
        fit ``lane`` of those in progress at once (lane 0: these). The roles do not meet
        :meth:`for_slot`'s (``outer.*`` against validation and inner ones), so lane 0 and
        slot 0 share one workspace."""
        return self._view(("lane", lane) if lane else 0)

    def _view(self, key):
        if key == 0:
            return self
        if key not in self._forks:
            view = copy.copy(self)
            view.workspace, view._pair_parts, view._forks = Workspace(self.backend), None, {}
            self._forks[key] = view
        return self._forks[key]

    def concurrent_slots(self, wanted=None):
        """How many inner fits to run side by side (see
        :meth:`~workbench.backend.ArrayBackend.concurrent_slots`): each slot holds its own
        scratch arrays, so only where they are small (:func:`side_by_side_bytes`)."""
        if not side_by_side_bytes(self.G.shape[-1], self.C.shape[-1]):
            return 1
        return self.backend.concurrent_slots(wanted)

    def inner_system(self, training, val, train_mask, val_mask, standardize):
        """The training system of ``train_mask`` without the atoms of ``val_mask``: the outer
        training set's moments (``training``, from :meth:`training`) minus the validation
        set's ``val``, one subtraction per moment instead of a sum over the atoms it keeps."""
        train_mask, val_mask = np.asarray(train_mask, bool), np.asarray(val_mask, bool)
        if (val_mask & ~train_mask).any():  # not a part of the training set: from the atoms
            train = self.total(train_mask & ~val_mask, into="inner")
        else:
            train = training.minus(val, self._arrays("inner"))
        if not self._rotated_together:
            return _TrainingSystem(self.backend, train, standardize, self.workspace, "inner")
        # totals made elsewhere are copied into their places in the pair block
        train, val = self._placed(train, "inner"), self._placed(val, "val")
        return _TrainingSystem(self.backend, train, standardize, self.workspace, "inner", val=val, pair=self._pair())

    @property
    def _rotated_together(self):
        """Whether validation sets use :meth:`_pair`: where the cross-products are thin (2 t
        + 2 <= p). With more targets their products are square or wide GEMMs already, and
        the block would hold two more p x t arrays for the whole fit."""
        return 2 * self.C.shape[-1] + 2 <= self.G.shape[-1]

    def _pair(self, fresh=False):
        """The workspace block ``[G_val | C_val | C_inner | sx_val | mean_inner]`` (p, p + 2t
        + 2) in which a validation set's Gram and cross-products and its inner training
        set's cross-products are written, so that one GEMM with the inner eigenvectors
        rotates all of them (:class:`_TrainingSystem`): one pass over the eigenvectors at
        the speed of a square GEMM, instead of a square GEMM, two thin ones (t columns run
        at about 70 % of a square GEMM's rate here) and two matrix-vector products.

        Asked for afresh (``fresh``) by each validation set's total, and kept with its
        parts' views until the next, so that ``is`` tells whether a total is in place."""
        if fresh or self._pair_parts is None:
            p, t = self.G.shape[-1], self.C.shape[-1]
            pair = self.workspace.get("pair", (p, p + 2 * t + 2))
            self._pair_parts = {"pair": pair, "val": {"G": pair[:, :p], "C": pair[:, p:p + t]},
                                "inner": {"G": self.workspace.get("inner.G", (p, p)), "C": pair[:, p + t:p + 2 * t]}}
        return self._pair_parts["pair"]

    def _arrays(self, into):
        """``{"G": array, "C": array}``: where a total of role ``into`` is written (None:
        new arrays; "val" and "inner": their parts of :meth:`_pair`)."""
        if into is None:
            return {"G": None, "C": None}
        if into in ("val", "inner") and self._rotated_together:
            self._pair()
            return self._pair_parts[into]
        return {name: self.workspace.get(f"{into}.{name}", getattr(self, name).shape[1:]) for name in ("G", "C")}

    def keep_totals(self, masks):
        """Sum the atoms of each of ``masks`` (bool, (A,)) once and keep the totals, for
        :meth:`total` to start from: e.g. each inner label's atoms over all outer folds, of
        which every fold's validation set is one atom short (one subtraction per validation
        set instead of a sum over the folds it spans). Each costs the moments' memory of one
        more atom; worth it where its uses save more additions than it takes to make."""
        for mask in masks:
            mask = np.asarray(mask, dtype=bool)
            made = self.total(mask, into=None)
            # not owned: every later total that starts from it only reads it
            self._kept.append((mask, _Total(self.backend, made.n, made.sx, made.sy, made.G, made.C, made.yy)))

    def total(self, mask, into="val"):
        """Moments summed over the atoms where ``mask`` (bool, (A,)) is True, the Gram and
        cross-products written into the workspace's arrays of role ``into`` (the total of
        one role is used up before the next of that role is asked for; None: new arrays).

        Each ``p x p`` addition is a pass over memory, so a total starts from whichever
        known sum is fewest atoms away: nothing (a few atoms), the grand total (a training
        set: all but a few), or a total kept by :meth:`keep_totals`.
        """
        mask = np.asarray(mask, dtype=bool)
        if into == "val" and self._rotated_together:  # a new validation set: its block asked for afresh
            self._pair(fresh=True)
        if not mask.any():
            return _Total(self.backend, *(grand * 0 for grand in self._grand), owned=True)
        found = None
        if mask.all():
            found = _Total(self.backend, *self._grand)
        elif mask.sum() == 1:  # one atom: its moments as they are
            found = _Total(self.backend, *(getattr(self, name)[int(np.flatnonzero(mask)[0])] for name in self.fields))
        if found is not None:
            return self._placed(found, into)
        # (atoms to add or subtract, base: None or field values); from nothing, the first
        # atom is the base and one addition fewer is needed
        starts = [(np.flatnonzero(mask), None), (np.flatnonzero(~mask), self._grand)]
        starts += [(np.flatnonzero(mask ^ kept_mask), [getattr(kept, name) for name in self.fields])
                   for kept_mask, kept in self._kept]
        steps, base = min(starts, key=lambda start: len(start[0]) - (start[1] is None))
        if base is not None and len(steps) == 0:
            return self._placed(_Total(self.backend, *base), into)
        # atom by atom into one array (an indexed sum would first copy the atoms' p x p
        # Grams: twice the memory traffic)
        bk = self.backend
        out = self._arrays(into)
        first, *rest = steps
        if base is None:
            totals = [bk.add(getattr(self, name)[first], getattr(self, name)[rest[0]], out=out.get(name))
                      for name in self.fields]
            rest = rest[1:]
        else:
            operation = bk.add if mask[first] else bk.subtract
            totals = [operation(value, getattr(self, name)[first], out=out.get(name))
                      for value, name in zip(base, self.fields)]
        for atom in rest:
            for i, name in enumerate(self.fields):  # in place for arrays (``n``'s are scalars)
                if mask[atom]:
                    totals[i] += getattr(self, name)[atom]
                else:
                    totals[i] -= getattr(self, name)[atom]
        return _Total(self.backend, *totals, owned=True)

    def _placed(self, total, into):
        """``total`` as it is, or, for a part of :meth:`_pair` ("val", "inner"), with its Gram
        and cross-products copied there if they are elsewhere (one pass, where it occurs: a
        validation set of one atom or equal to a kept total)."""
        if into not in ("val", "inner") or not self._rotated_together:
            return total
        out = self._arrays(into)
        if total.G is out["G"] and total.C is out["C"]:
            return total
        G, C = (value if value is out[name] else self.backend.copy(value, out[name])
                for name, value in (("G", total.G), ("C", total.C)))
        return _Total(self.backend, total.n, total.sx, total.sy, G, C, total.yy, owned=True)


class _Total:
    """Moments of one set of samples (raw sums), with the centred versions derived from them
    when asked: a training system needs the centred ones (:meth:`centred`), a validation
    set only its raw sums (:meth:`_TrainingSystem.validation_errors`), and each ``p x p``
    pass over memory costs about as much as a tenth of the rotation's GEMMs."""

    def __init__(self, backend, n, sx, sy, G, C, yy, owned=False):
        self.backend = backend
        # owned: G and C are this total's own arrays (not an atom's or the grand total's),
        # which a consumer that is their last user may overwrite
        self.owned = owned
        self.n = float(n)
        self.sx, self.sy, self.G, self.C, self.yy = sx, sy, G, C, yy
        self.mean_x, self.mean_y = sx / self.n, sy / self.n
        self.yyc = yy - self.n * self.mean_y * self.mean_y

    def minus(self, other, out):
        """The moments of these samples without ``other``'s (a subset of them); the Gram
        and cross-products into ``out["G"]`` and ``out["C"]``."""
        bk = self.backend
        G = bk.subtract(self.G, other.G, out=out["G"])
        C = bk.subtract(self.C, other.C, out=out["C"])
        return _Total(bk, self.n - other.n, self.sx - other.sx, self.sy - other.sy, G, C, self.yy - other.yy,
                      owned=True)

    def centred(self, overwrite=False):
        """The centred Gram and cross-products ``(Gc, Cc)``; computed in the raw ones' arrays
        when ``overwrite`` (for a total used by nothing else afterwards)."""
        bk, inplace = self.backend, overwrite and self.owned
        return (bk.subtract_outer(self.G, self.n * self.mean_x, self.mean_x, inplace=inplace),
                bk.subtract_outer(self.C, self.n * self.mean_x, self.mean_y, inplace=inplace))


# The least standard deviation a feature is given in a training set, as a share of its
# standard deviation over all the data (1 after :meth:`RidgeCV._prepare`): see
# :func:`_training_scale`.
MIN_TRAINING_SCALE = 0.1


def _training_scale(bk, variance):
    """Each feature's scale in a training set: its standard deviation there, at least
    :data:`MIN_TRAINING_SCALE` (of its standard deviation over all the data, which the
    prepared features have as 1).

    Why a floor: a feature that hardly varies in a training set but does over all the data
    (a unit active only for held-out images; or one constant in the training set, whose
    variance is then rounding residue of about 1e-17, not 0) was scaled up by the inverse of
    that small deviation, and its held-out values with it: predictions of raw units off by
    1e8 target sd. With the floor it is scaled up at most tenfold. Features that vary in
    every training set (deviations near their overall one) are scaled as before."""
    return bk.clip_min(bk.sqrt(bk.clip_min(variance, 0.0)), MIN_TRAINING_SCALE)


class _TrainingSystem:
    """The training set's standardised Gram eigendecomposition, shared by all alphas."""

    def __init__(self, backend, train, standardize, workspace=None, role="outer", val=None, pair=None):
        """``role``: "outer" (a fit's training set, whose raw moments the inner systems
        still need) or "inner" (used up before the next inner system is built: its
        moments are centred in place). ``workspace`` holds this role's p x p arrays.
        ``val`` and ``pair``: an inner system's validation set, whose Gram and
        cross-products and the training cross-products are parts of the block ``pair``
        (:meth:`Moments._pair`): all are rotated by one GEMM."""
        self.backend, self.train = backend, train
        self.workspace = workspace if workspace is not None else Workspace(backend)
        gram, centred_c = train.centred(overwrite=role == "inner")
        p = gram.shape[0]
        if standardize:
            self.scale = _training_scale(backend, gram.diagonal() / train.n)
            gram /= self.scale[:, None] * self.scale[None, :]  # gram is a new or an owned array
        else:
            self.scale = train.mean_x * 0 + 1
        eigenvalues, self.V = backend.eigh(gram, out=self.workspace.eigh_out(role, p))
        self.eigenvalues = backend.clip_min(eigenvalues, 0.0)
        # eigenvectors with the feature scaling folded in: Vs' G Vs is the standardised,
        # rotated Gram of any set of samples without scaling a p x p matrix first
        self.Vs = (backend.divide(self.V, self.scale[:, None], out=self.workspace.get(role + ".Vs", (p, p)))
                   if standardize else self.V)
        self._val, self._rotated = val, None
        if pair is None:
            self.Q = self.Vs.T @ centred_c  # (p, t)
        else:  # Vs' [G_val | C_val | Cc | sx_val | mean_x]: the rotated parts as views
            t = centred_c.shape[1]
            backend.copy(val.sx, pair[:, p + 2 * t])
            backend.copy(train.mean_x, pair[:, p + 2 * t + 1])
            rotated = backend.matmul(self.Vs.T, pair, out=self.workspace.get("rotation", pair.shape))
            self.Q = rotated[:, p + t:p + 2 * t]
            self._rotated = {"G": rotated[:, :p], "C": rotated[:, p:p + t], "sx": rotated[:, p + 2 * t],
                             "mean_x": rotated[:, p + 2 * t + 1]}

    def coefficients(self, alpha_per_target):
        """Standardised-space coefficients (p, t) with one alpha per target."""
        return self.V @ (self.Q / (self.eigenvalues[:, None] + alpha_per_target[None, :]))

    def validation_errors(self, val, alphas):
        """Sum of squared held-out errors, (n_alphas, t), from the validation moments."""
        train = self.train
        # Validation moments about the TRAINING means (the fitted model's intercept), rotated:
        # with a = Vs' sx_val and b = Vs' mean_train, Vs' G_val Vs = Vs' G Vs - a b' - b a' +
        # n b b' and Vs' C_val = Vs' C - a my' - b sy' + n b my', so the rank-one centring
        # terms cost p^2 after the rotation instead of passes over p x p moments before it.
        my = train.mean_y
        bk, workspace, p = self.backend, self.workspace, self.Vs.shape[0]
        if self._rotated is not None and val is self._val:  # rotated with the training set
            half, PC = self._rotated["G"], self._rotated["C"]
            a, b = self._rotated["sx"], self._rotated["mean_x"]
        else:
            a, b = self.Vs.T @ val.sx, self.Vs.T @ train.mean_x
            half = bk.matmul(self.Vs.T, val.G, out=workspace.get("rotation", (p, p)))
            PC = self.Vs.T @ val.C
        rotated = bk.matmul(half, self.Vs, out=workspace.get("M", (p, p)))
        # both rank-one terms in one pass: [a b] @ [b, a - n b]'
        M = bk.subtract_product(rotated, bk.stack([a, b]).T, bk.stack([b, a - val.n * b]), inplace=True)
        P = bk.subtract_product(PC, bk.stack([a, b]).T, bk.stack([my, val.sy - val.n * my]), inplace=True)
        yy_val = val.yy - 2 * my * val.sy + val.n * my * my
        return _squared_errors(self.backend, M, P, self.Q, self.eigenvalues, yy_val, alphas, workspace)

    def gcv_errors(self, alphas):
        """Generalised cross-validation criterion, (n_alphas, t)."""
        e, Q, n = self.eigenvalues, self.Q, self.train.n
        d = 1.0 / (e[None, :] + alphas[:, None])  # (a, p)
        Q2 = Q * Q
        sse = self.train.yyc[None] - 2 * (d @ Q2) + (d * d * e[None, :]) @ Q2
        dof = (e[None, :] * d).sum(1) + 1.0  # + intercept
        return (sse / n) / ((1.0 - dof / n) ** 2)[:, None]


class Rows:
    """The prepared samples themselves, for the kernel (dual) form: ``X`` ``(S, T, p)`` and
    ``Y`` ``(S, T, t)`` backend arrays and each stimulus's atom. Only per-atom feature sums
    are precomputed (``p`` numbers per atom, never a ``p x p`` Gram)."""

    def __init__(self, backend, X, Y, atoms):
        self.backend, self.X, self.Y = backend, X, Y
        self.atoms = np.asarray(atoms)
        self.n_targets = Y.shape[-1]

    def total(self, mask):
        """The samples of the atoms where ``mask`` is True (stimulus order kept)."""
        stimuli = np.flatnonzero(np.asarray(mask, dtype=bool)[self.atoms])
        index = self.backend.index(stimuli)
        return _RowSet(self.X[index].reshape(-1, self.X.shape[-1]), self.Y[index].reshape(-1, self.Y.shape[-1]))

    def keep_totals(self, masks):
        """Nothing to keep: each set's rows are gathered when it is asked for."""

    def training(self, mask):
        """The rows of the atoms where ``mask``."""
        return self.total(mask)

    def system_of(self, training, standardize):
        """The training system (kernel eigendecomposition) of :meth:`training`'s rows."""
        return _KernelSystem(self.backend, training, standardize)

    def system(self, mask, standardize):
        """The training system of the atoms where ``mask``."""
        return self.system_of(self.training(mask), standardize)

    def for_slot(self, slot):
        """These rows (only :meth:`concurrent_slots` = 1 is offered)."""
        return self

    for_lane = for_slot

    def concurrent_slots(self, wanted=None):
        """1: the kernel systems are n x n for the largest problems, and two side by side
        would hold two."""
        return 1

    def inner_system(self, training, val, train_mask, val_mask, standardize):
        """The training system of ``train_mask`` without ``val_mask``'s atoms (rows: taken
        from the atoms; ``training`` and ``val`` are not needed)."""
        return self.system(np.asarray(train_mask, bool) & ~np.asarray(val_mask, bool), standardize)


class _RowSet:
    """One set of samples (rows), with the moments the selection needs."""

    def __init__(self, X, Y):
        self.X, self.Y = X, Y
        self.n = float(X.shape[0])
        self.mean_x, self.mean_y = X.mean(0), Y.mean(0)
        centred = Y - self.mean_y
        self.yyc = (centred * centred).sum(0)


# Rows per block of the kernel Z Z' (:func:`_outer_gram`): blocks this tall still run at a
# square GEMM's rate, and the blocks above the diagonal, which are not computed, are most of
# the work saved (the saving is (b - 1) / 2b of the flops for b blocks a side).
_KERNEL_BLOCK = 1024


def _outer_gram(bk, Z):
    """The kernel ``Z Z'`` (n x n) of the rows of ``Z`` (n x p), computed a block of rows at
    a time on and below the diagonal and mirrored above it: a GEMM computes both halves of a
    symmetric product (there is no symmetric rank-k update in torch), and these kernels of
    thousands of samples x tens of thousands of units are most of a dual fit's GEMM time.
    Exactly symmetric, as the eigensolver assumes."""
    n = Z.shape[0]
    if n <= 2 * _KERNEL_BLOCK:
        return Z @ Z.T
    kernel = bk.empty((n, n), Z.dtype)
    starts = list(range(0, n, _KERNEL_BLOCK))
    for i in starts:
        rows = slice(i, i + _KERNEL_BLOCK)
        # the block row left of and on the diagonal in one GEMM: (block, i + block) wide
        below = bk.matmul(Z[rows], Z[:i + _KERNEL_BLOCK].T, out=kernel[rows, :i + _KERNEL_BLOCK])
        if i:
            bk.copy(below[:, :i].T, kernel[:i, rows])
    return kernel


class _KernelSystem:
    """The training set's standardised kernel ``Z Z'`` (n x n) and its eigendecomposition,
    shared by all alphas: ridge in dual form, for more features than samples.

    With ``Z Z' = U diag(s) U'`` and ``Qd = U' Yc``, the coefficients are
    ``Z' U diag(1 / (s + alpha)) Qd``: the primal ``(Z'Z + alpha I)^-1 Z' Yc`` exactly
    (push-through identity), so both forms choose the same alphas and give the same fits.

    Computed in float64 (:meth:`RidgeCV._prepare` prepares the rows so) whatever the working
    dtype. The dual, unlike the primal, is not stable in float32: the targets have their
    full size along the kernel's null directions (``Qd``), where only ``Z'u = 0`` cancels
    them, and a float32 kernel and eigensolver leave ``Z'u`` at rounding size, which
    ``1 / alpha`` then amplifies. Model features are highly collinear (a layer's units, and
    its bins before the response), so their kernels have hundreds of such directions: in
    float32 held-out predictions of 2,500 stacked samples x 12,288 units were off by 2.7
    target sd at alpha 1, against 1e-5 in float64.
    """

    def __init__(self, backend, train, standardize):
        self.backend, self.train = backend, train
        centred = train.X - train.mean_x
        train.X = None  # the centred copy replaces the rows: one n x p copy at a time
        if standardize:
            self.scale = _training_scale(backend, (centred * centred).sum(0) / train.n)
            centred /= self.scale
        else:
            self.scale = train.mean_x * 0 + 1
        self.Z = centred
        eigenvalues, self.U = backend.eigh(_outer_gram(backend, centred))
        self.eigenvalues = backend.clip_min(eigenvalues, 0.0)
        self.Qd = self.U.T @ (train.Y - train.mean_y)  # (n, t)

    def coefficients(self, alpha_per_target):
        """Standardised-space coefficients (p, t) with one alpha per target."""
        return self.Z.T @ (self.U @ (self.Qd / (self.eigenvalues[:, None] + alpha_per_target[None, :])))

    def validation_errors(self, val, alphas):
        """Sum of squared held-out errors, (n_alphas, t)."""
        bk = self.backend
        Zv = (val.X - self.train.mean_x) / self.scale
        A = (Zv @ self.Z.T) @ self.U  # (n_val, n): validation rows in the kernel's eigenbasis
        residual = val.Y - self.train.mean_y
        errors = []
        for alpha in bk.to_numpy(alphas):
            difference = residual - A @ (self.Qd / (self.eigenvalues[:, None] + float(alpha)))
            errors.append((difference * difference).sum(0))
        return bk.stack(errors)

    def gcv_errors(self, alphas):
        """Generalised cross-validation criterion, (n_alphas, t) (the primal's, in the kernel's
        eigenbasis: the residual outside the kernel's span is not shrunk)."""
        s, Q2, n = self.eigenvalues, self.Qd * self.Qd, self.train.n
        shrink = alphas[:, None] / (s[None, :] + alphas[:, None])  # (a, n)
        outside = self.train.yyc - Q2.sum(0)
        sse = outside[None] + (shrink * shrink) @ Q2
        dof = (s[None, :] / (s[None, :] + alphas[:, None])).sum(1) + 1.0  # + intercept
        return (sse / n) / ((1.0 - dof / n) ** 2)[:, None]


# Relative eigenvalue gap below which two eigenvalues share a cluster: the partial-fraction
# terms are at most (e + alpha) / gap times the exact pair terms, so float64 keeps them
# accurate to ~1e-9 (relative) when the gap is at least 1e-7 of the largest e + alpha.
_CLUSTER_GAP = 1e-7

# Bytes of float64 per block of K's rows (about a core's L2 cache).
_K_BLOCK_BYTES = 2**20


def _centred_copy(values, order, work):
    """``(copy, mean, offset)``: ``values[order] - offset`` as a new C-contiguous array of
    dtype ``work`` (stimuli, the first axis, in ``order``; as they are when None), each
    column's float64 ``mean`` over all leading axes (n_columns,), and ``offset``, the mean
    rounded to ``work`` (float64 numbers).

    Rounded, the offset makes the subtraction one correctly rounded operation whichever way
    it runs, so a float32 layer and its float64 copy give the same array. float32 values
    are gathered and centred by torch's CPU kernels on every core (a 1,000-image x 10-bin x
    1,024-unit layer: 2 ms, against 16 ms for numpy on one); any other dtype in float64
    arithmetic (no precision lost to a large offset), a few MB of rows at a time (never a
    whole reordered float64 copy)."""
    values = np.asarray(values)
    n_columns = values.shape[-1]
    copy = np.empty(values.shape, dtype=work)
    fast = values.dtype == work == np.float32 and min(values.strides, default=0) >= 0
    if fast:
        with warnings.catch_warnings():  # read-only input (a memory map): torch only reads it
            warnings.simplefilter("ignore", UserWarning)
            source = torch.from_numpy(values)
        target = torch.from_numpy(copy)
        if order is None:
            target.copy_(source)
        else:
            torch.index_select(source, 0, torch.from_numpy(np.asarray(order, dtype=np.int64)), out=target)
        # float64 mean of the contiguous copy (of the strided input it took 5 times longer)
        mean = copy.reshape(-1, n_columns).mean(0, dtype=np.float64)
        offset = mean.astype(work)
        target.sub_(torch.from_numpy(offset))
        return copy, mean, offset.astype(np.float64)
    mean = values.mean(tuple(range(values.ndim - 1)), dtype=np.float64)
    with np.errstate(over="ignore"):  # a mean beyond float32's range: refused by the caller
        offset = mean.astype(work).astype(np.float64)
    order = np.arange(len(values)) if order is None else np.asarray(order)
    step = max(1, (8 * 2**20) // max(1, values[:1].nbytes))
    with np.errstate(invalid="ignore", over="ignore"):  # non-finite input: refused by the caller
        for start in range(0, len(order), step):
            rows = order[start:start + step]
            np.subtract(values[rows], offset, out=copy[start:start + step], casting="unsafe")  # float64 math, one cast
    return copy, mean, offset


def _column_std(centred, mean, block_bytes=2**20):
    """Standard deviation of the columns of a C-contiguous array over all leading axes,
    about their float64 ``mean`` (two passes, like ``numpy.std``): squares in the array's
    dtype a block of about ``block_bytes`` at a time, summed in float64. For a centred copy
    (:func:`_centred_copy`, whose columns' means are near zero) float32 squares keep the
    scale to about 1e-7 (relative)."""
    n_columns = centred.shape[-1]
    rows = torch.from_numpy(centred.reshape(-1, n_columns))
    shift = torch.from_numpy(np.asarray(mean, dtype=centred.dtype))
    step = max(1, block_bytes // max(1, n_columns * centred.itemsize))
    squares = torch.zeros(n_columns, dtype=torch.float64)
    for start in range(0, rows.shape[0], step):
        block = rows[start:start + step] - shift
        squares += (block * block).sum(0)
    return np.sqrt(squares.numpy() / max(1, rows.shape[0]))


def _squared_errors(bk, M, P, Q, e, yy, alphas, workspace=None):
    """Held-out sums of squared errors for every alpha, (n_alphas, t).

    With rotated coefficients ``b_a = Q / (e + a)`` the error is
    ``yy - 2 sum_i b_ai P_i + sum_ij b_ai M_ij b_aj``. The quadratic term costs
    ``n_alphas * p^2 * t`` done directly; the partial fractions
    ``1/((e_i+a)(e_j+a)) = (1/(e_i+a) - 1/(e_j+a)) / (e_j - e_i)`` turn it into one
    ``p^2 t`` GEMM shared by all alphas, ``2 sum_i d_ai Q_i (K Q)_i`` with the antisymmetric
    ``K_ij = M_ij / (e_j - e_i)`` (of M's symmetric part). Pairs of (nearly) equal
    eigenvalues (ties, clipped zeros of a rank-deficient Gram) are summed directly within
    their cluster. Computed in float64 (the partial fractions cancel); the direct sum when
    float64 is unavailable or clusters are large. ``workspace`` (optional) holds the ``p x p`` terms (``K``, ``M'``).
    """
    if bk.float64 is None:
        return _squared_errors_direct(bk, M, P, Q, e, yy, alphas)
    wide = bk.float64
    # M stays in its dtype: K = M / gap promotes to float64 in the one pass that forms K
    P, Q, e, yy, alphas = (bk.asarray(v, dtype=wide) for v in (P, Q, e, yy, alphas))
    values = bk.to_numpy(e)
    tolerance = _CLUSTER_GAP * (values[-1] + float(bk.to_numpy(alphas).max()))
    starts = np.flatnonzero(np.concatenate([[True], np.diff(values) > tolerance]))  # e is ascending
    sizes = np.diff(np.concatenate([starts, [len(values)]]))
    if int((sizes[sizes > 1] ** 2).sum()) * 4 > len(values) ** 2:
        return _squared_errors_direct(bk, bk.asarray(M, dtype=wide), P, Q, e, yy, alphas)
    d = 1.0 / (e[None, :] + alphas[:, None])  # (a, p)
    p = len(values)
    workspace = Workspace(bk) if workspace is None else workspace
    K = workspace.get("K", (p, p), wide)
    # K from M's symmetric part, (M + M') / (2 gap): exactly antisymmetric, as the identity
    # needs. M = Vs' G Vs is symmetric, but a float32 GEMM leaves it asymmetric by ~1e-7 of
    # its scale, and K's symmetric part does not cancel: it is amplified by (e + a) / gap,
    # up to 1 / _CLUSTER_GAP (errors off by 5e-5 of their range over alphas, 1e-8 with it)
    twice_m = bk.copy(M.T, workspace.get("M.T", (p, p), M.dtype))  # a blocked transpose
    twice_m += M  # rounds M_ij + M_ji and M_ji + M_ij alike
    twice_e = 2 * e  # exact: 2 e_j - 2 e_i is exactly twice the gap
    # K a block of rows at a time: each block's gap is divided while it is still in cache (a
    # whole p x p float64 gap went through memory twice more: 20 % of this function)
    rows = max(1, _K_BLOCK_BYTES // (8 * p))
    with np.errstate(divide="ignore", invalid="ignore"):  # the diagonal and clusters: zeroed below
        for start in range(0, p, rows):
            block = slice(start, start + rows)
            bk.subtract(twice_e[None, :], twice_e[block, None], out=K[block])
            bk.divide(twice_m[block], K[block], out=K[block])  # read in float64: no widened copy
    # zero on the diagonal and inside clusters (their pairs are summed directly below)
    bk.fill_diagonal(K, 0.0)
    clustered = [slice(int(start), int(start + size)) for start, size in zip(starts, sizes) if size > 1]
    for block in clustered:
        K[block, block] = 0.0
    alone = bk.asarray(np.repeat(sizes == 1, sizes), dtype=wide)  # singletons' own diagonal
    diagonal = bk.asarray(M.diagonal(), dtype=wide)
    # -2 sum_i d_ai Q_i P_i and the pairs' 2 sum_i d_ai Q_i (K Q)_i share one (a x p) GEMM;
    # each p x t float64 term is let go as soon as it is used (with 30,000 targets each is
    # 240 MB: holding them all raised a fit's peak by a quarter of a GB)
    linear = K @ Q
    linear -= P
    del P
    linear *= Q
    errors = d @ linear
    del linear
    errors *= 2
    squares = Q * Q
    squares *= (diagonal * alone)[:, None]
    errors += (d * d) @ squares
    del squares
    for block in clustered:
        B = d[:, block, None] * Q[None, block]  # (a, m, t): the cluster, diagonal included
        errors = errors + (B * (bk.asarray(M[block, block], dtype=wide) @ B)).sum(1)
    return yy[None] + errors


def _squared_errors_direct(bk, M, P, Q, e, yy, alphas):
    """:func:`_squared_errors` by one GEMM ``M @ [b_1 ... b_a]`` (n_alphas p^2 t flops)."""
    B = Q[None] / (e[None, :, None] + alphas[:, None, None])  # (a, p, t)
    n_alphas, p, t = B.shape
    MB = bk.permute((M @ bk.permute(B, (1, 0, 2)).reshape(p, -1)).reshape(p, n_alphas, t), (1, 0, 2))
    return yy[None] - 2 * (B * P[None]).sum(1) + (B * MB).sum(1)


class RidgeCV:
    """Ridge regression with one alpha per target chosen by grouped inner CV (or GCV).

    Parameters
    ----------
    alphas : array-like
        Candidate penalties (on standardised features when ``standardize``).
    cv : int or "gcv"
        Inner folds over groups (stimuli), or generalised cross-validation.
    scoring : {"mse", "r2"}
        Inner-CV criterion: mean over inner folds of the fold's MSE (minimised) or R^2
        (maximised). Ties go to the larger alpha.
    standardize : bool
        z-score features with the training statistics (layers then share a scale). A
        feature's training standard deviation is taken as at least
        :data:`MIN_TRAINING_SCALE` (0.1) of its standard deviation over all the data fitted:
        a unit that hardly varies in a training set (active only for held-out images) is
        not scaled up without bound, nor its held-out values with it.
    backend, device, dtype :
        Array backend (:class:`workbench.backend.ArrayBackend`): torch by default, on CUDA
        when present, else the CPU (torch's LAPACK eigensolver is about twice as fast as
        numpy's for these sizes, and the whole solve stays in one library); ``"numpy"`` is
        the reference. float32 by default, ``"float64"`` on request.
    seed : int
        Seeds the inner folds.
    solver : {"auto", "primal", "dual"}
        ``"primal"`` works from the ``p x p`` Gram of the features (memory and time grow with
        ``p^2`` and ``p^3``, not with the samples); ``"dual"`` from the ``n x n`` kernel of the
        samples (for more features than samples: per-bin fits, unreduced layers of 50k+
        units). Both give the same alphas and coefficients. ``"auto"``: dual when the
        features outnumber the samples.
    n_jobs : int or None
        How many of a fit's independent pieces (the training set's decomposition and each
        inner fold's) run side by side, each on half of torch's CPU threads; with outer
        folds, the next fold's pieces start while this fold's last ones run. None: 2 on a
        CPU with 2 or more threads, where the second worker's arrays take at most 256 MB
        (:func:`side_by_side_bytes`: e.g. 1,700 features and 100 targets, or 1,024 features
        and 1,400 targets), else 1; 1: one piece after the other; 2 or more: 2 where
        possible. Side by side is 5-10 % faster on 2 cores (LAPACK's eigensolver gains less
        from a second thread than two decompositions do from running together). The answers
        are the same either way, up to float rounding (sums over one thread or two).

    Attributes (after ``fit``)
    ----------
    alpha_ : numpy.ndarray, shape (n_targets,)
    solver_ : str
        ``"primal"`` or ``"dual"``, the form used.
    coef_ : numpy.ndarray, shape (n_features, n_targets)
    intercept_ : numpy.ndarray, shape (n_targets,)
    """

    #: each target's coefficients and alpha depend on that target alone (the features'
    #: decomposition is shared): targets fitted together or apart get the same fits
    fits_targets_separately = True

    def __init__(self, alphas=DEFAULT_ALPHAS, cv=3, scoring="mse", standardize=True,
                 backend="torch", device="auto", dtype="float32", seed=0, solver="auto", n_jobs=None):
        self.alphas = alphas
        self.cv = cv
        self.scoring = scoring
        self.standardize = standardize
        self.backend = backend
        self.device = device
        self.dtype = dtype
        self.seed = seed
        self.solver = solver
        self.n_jobs = n_jobs

    # -- validation -------------------------------------------------------------------
    def _check_params(self):
        try:  # numbers only: text or bools (True == 1.0) are mistakes, not penalties
            given = np.asarray(self.alphas)
            alphas = np.sort(given.astype(np.float64).ravel()) if given.dtype.kind in "iuf" else np.empty(0)
        except (TypeError, ValueError):  # ragged nesting
            alphas = np.empty(0)
        if alphas.size == 0 or not np.all(np.isfinite(alphas)) or alphas.min() <= 0:
            raise MetricError(f"alphas must be positive, finite numbers, got {self.alphas!r}")
        if self.scoring not in ("mse", "r2"):
            raise MetricError(f"scoring must be 'mse' or 'r2', got {self.scoring!r}")
        if self.solver not in ("auto", "primal", "dual"):
            raise MetricError(f"solver must be 'auto', 'primal' or 'dual', got {self.solver!r}")
        if self.n_jobs is not None and not (isinstance(self.n_jobs, (int, np.integer))
                                            and not isinstance(self.n_jobs, bool) and self.n_jobs >= 1):
            raise MetricError(f"n_jobs must be None or an int >= 1, got {self.n_jobs!r}")
        if not (self.cv == "gcv" or (isinstance(self.cv, (int, np.integer)) and self.cv >= 2)):
            raise MetricError(f"cv must be an int >= 2 or 'gcv', got {self.cv!r}")
        return alphas

    def _setup(self):
        """Validate the parameters, pick the backend; returns (sorted alphas, n_inner)."""
        alphas = self._check_params()
        device = self.device
        if device in (None, "auto") and self.backend == "torch":
            # CUDA when present, else the CPU (MPS lacks float64 and a symmetric eigensolver)
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self._bk = get_backend(self.backend, device, self.dtype)
        n_inner = 1 if (self.cv == "gcv" or len(alphas) == 1) else int(self.cv)
        return alphas, n_inner

    # -- the engine ---------------------------------------------------------------------
    def uses_dual(self, n_samples, n_features):
        """Whether a problem of this size is solved in kernel (dual) form."""
        return self.solver == "dual" or (self.solver == "auto" and n_features > n_samples)

    def _data(self, Xb, Yb, atoms, n_atoms):
        """What the solver reads (the form :meth:`_prepare` chose): per-atom moments (primal)
        or the rows (dual)."""
        if self.solver_ == "dual":
            return Rows(self._bk, Xb, Yb, atoms)
        return Moments.from_data(self._bk, Xb, Yb, atoms, n_atoms)

    def _prepare(self, X, Y, order=None):
        """Centre (and scale) globally before the float32 moments: the fits are invariant to
        it, and it keeps the moment subtractions well conditioned. One contiguous array of
        the working dtype each (:func:`_centred_copy`: no precision lost to a large offset),
        its stimuli (first axis) in ``order`` when given: sorted by atom, each atom's rows
        are one block, read without a copy. The scale is each column's standard deviation,
        taken from the centred copy.

        The kernel (dual) form is prepared in float64 whatever ``dtype`` (its systems are
        float64, :class:`_KernelSystem`): with many collinear features a small alpha
        amplifies a 1e-7 change of the data (float32 rounding of the prepared copy) into
        another fit, and into other alphas chosen for some targets."""
        X, Y = np.asarray(X), np.asarray(Y)
        self.solver_ = "dual" if self.uses_dual(int(np.prod(X.shape[:-1])), X.shape[-1]) else "primal"
        wide = self.dtype == "float64" or (self.solver_ == "dual" and self._bk.float64 is not None)
        work = np.float64 if wide else np.float32
        if X.size == 0 or Y.size == 0:
            raise MetricError(f"nothing to fit: features {X.shape} and targets {Y.shape} (samples first, then "
                              "features or targets; fix: at least one sample, feature and target)")
        centred_x, mean_x, self._x_offset = _centred_copy(X, order, work)
        centred_y, mean_y, self._y_offset = _centred_copy(Y, order, work)
        for name, mean, offset in (("features", mean_x, self._x_offset), ("targets", mean_y, self._y_offset)):
            check_finite_columns(name, mean, error=MetricError)
            bad = np.flatnonzero(~np.isfinite(offset))
            if len(bad):
                raise MetricError(f"the {name} are beyond {np.dtype(work).name}'s range in {len(bad)} column(s) "
                                  f"(e.g. column {int(bad[0])}, mean {mean[bad[0]]:.3g}); fix: rescale them, or "
                                  "RidgeCV(dtype='float64')")
        if self.standardize:
            # about the columns' exact means (the offset is the mean rounded to ``work``)
            scale = _column_std(centred_x, mean_x - self._x_offset)
            self._x_scale = np.where(scale > 0, scale, 1.0)
            torch.from_numpy(centred_x).div_(torch.from_numpy(self._x_scale.astype(work)))
        else:
            self._x_scale = np.ones(centred_x.shape[-1])
        dtype = self._bk.float64 if wide else None
        return self._bk.asarray(centred_x, dtype=dtype), self._bk.asarray(centred_y, dtype=dtype)

    def _solve(self, moments, train_mask, validation_masks, alphas):
        """Choose per-target alphas on the validation splits, then fit on ``train_mask``.

        Sets ``alpha_``, ``coef_``, ``intercept_`` (in the caller's original units).
        """
        with SideBySide(moments.concurrent_slots(self.n_jobs)) as side:
            return self._finish(self._begin(moments, train_mask, validation_masks, alphas, side), alphas)

    def _begin(self, moments, train_mask, validation_masks, alphas, side, lane=0):
        """Start a fit's pieces on ``side`` (:class:`~workbench.backend.SideBySide`): the
        training system and each validation set's held-out errors, which are independent
        of each other. Returns ``(system, terms, n_targets)`` (futures) for :meth:`_finish`.

        ``lane``: which of the fits in progress at once this is (its training moments and
        system are that lane's arrays, :meth:`Moments.for_lane`); each piece's scratch
        arrays are its worker slot's (:meth:`Moments.for_slot`)."""
        bk = self._bk
        alphas_b = bk.asarray(alphas)
        own = moments.for_lane(lane)
        if len(alphas) == 1 or self.cv == "gcv":
            def closed_form(_, slot):
                system = own.system(train_mask, self.standardize)
                if len(alphas) == 1:
                    return system, None
                return system, bk.to_numpy(system.gcv_errors(alphas_b)).astype(np.float64)

            return side.submit(closed_form, None), None, moments.n_targets
        training = own.training(train_mask)

        def system(_, slot):
            return own.system_of(training, self.standardize), None

        def term(val_mask, slot):
            """Validation set ``val_mask``'s error term (None when it holds no stimulus)."""
            view = moments.for_slot(slot)
            val = view.total(val_mask)
            if val.n == 0:
                # an inner label that no training stimulus holds (a few stimuli dealt over
                # folds of one or two): no held-out error to add. Counted, it was 0/0 for
                # every alpha, and the NaN chose the largest alpha
                return None
            inner = view.inner_system(training, val, train_mask, val_mask, self.standardize)
            sse = bk.to_numpy(inner.validation_errors(val, alphas_b)).astype(np.float64)
            if self.scoring == "mse":
                return sse / val.n
            total = bk.to_numpy(val.yyc).astype(np.float64)  # minimise 1 - R^2
            with np.errstate(invalid="ignore", divide="ignore"):
                return np.where(total > 0, sse / total, np.inf)

        return (side.submit(system, None), [side.submit(term, val_mask) for val_mask in validation_masks],
                moments.n_targets)

    def _finish(self, started, alphas):
        """Choose per-target alphas from :meth:`_begin`'s pieces (their terms summed in the
        validation sets' order, however they ran) and set the fit's coefficients."""
        bk = self._bk
        (system, criterion), term_futures, n_targets = started[0].result(), started[1], started[2]
        if term_futures is not None:
            terms = [term for term in (future.result() for future in term_futures) if term is not None]
            if not terms:
                raise MetricError(f"inner cross-validation (cv={self.cv}) has no held-out stimulus: the "
                                  "training set is too small (fix: more stimuli, fewer outer folds, or cv='gcv')")
            criterion = sum(terms)
        if criterion is None:  # one alpha
            best = np.zeros(n_targets, dtype=np.int64)
        else:
            # Ties go to the larger alpha: search the reversed (descending) grid.
            best = len(alphas) - 1 - np.argmin(criterion[::-1], axis=0)
        self.alpha_ = alphas[best]
        # beta acts on standardised, training-centred features of the prepared data.
        self._beta = system.coefficients(bk.asarray(self.alpha_)) / system.scale[:, None]
        self._mean_x, self._mean_y = system.train.mean_x, system.train.mean_y
        beta = bk.to_numpy(self._beta).astype(np.float64)
        self.coef_ = beta / self._x_scale[:, None]
        self.intercept_ = (self._y_offset + bk.to_numpy(self._mean_y).astype(np.float64)
                           - (self._x_offset / self._x_scale
                              + bk.to_numpy(self._mean_x).astype(np.float64)) @ beta)
        return self

    def _predict_prepared(self, Xb):
        """Predictions for already prepared (globally centred/scaled) backend rows."""
        # the training means folded into the intercept: no centred copy of the rows
        return Xb @ self._beta + (self._mean_y - self._mean_x @ self._beta)

    # -- public API ---------------------------------------------------------------------
    def fit(self, X, Y, groups=None):
        """Fit on ``X`` ``(n_samples, n_features)`` and ``Y`` ``(n_samples, n_targets)``.

        ``groups`` ``(n_samples,)`` labels samples that stay together in inner folds
        (e.g. the stimulus of each stacked stimulus x time sample); default: each sample
        is its own group.
        """
        alphas, n_inner = self._setup()
        X = np.asarray(X)
        Y = np.asarray(Y)
        if X.ndim != 2 or Y.ndim != 2 or len(X) != len(Y):
            raise MetricError(f"X and Y must be 2-D with the same rows, got {X.shape} and {Y.shape}")
        groups = np.arange(len(X)) if groups is None else np.asarray(groups)
        codes, uniques = pd.factorize(groups)
        if n_inner > 1:
            atoms = fold_labels(stimulus_folds(len(uniques), n_inner, self.seed), len(uniques))[codes]
        else:
            atoms = np.zeros(len(X), dtype=np.int64)
        order = np.argsort(atoms, kind="stable")
        Xb, Yb = self._prepare(X[:, None, :], Y[:, None, :], order)
        moments = self._data(Xb, Yb, atoms[order], n_inner)
        every = np.ones(n_inner, bool)
        return self._solve(moments, every, [np.arange(n_inner) == k for k in range(n_inner)], alphas)

    def cross_val_predict(self, X, Y, folds, strata=None, progress=None, split_half=False, predict_also=None):
        """Held-out predictions of every outer fold, with inner CV nested inside each.

        Parameters
        ----------
        X : numpy.ndarray, shape (n_stimuli, n_time_bins, n_features)
        Y : numpy.ndarray, shape (n_stimuli, n_time_bins, n_targets)
            Samples are stacked over time bins; a stimulus is never split.
        folds : list of (train_index, test_index)
            Outer folds over stimuli that partition them.
        strata : array-like, optional
            Labels to balance in the inner folds.
        progress : callable, optional
            Wraps the list of fits (e.g. ``tqdm``): one per outer fold, then the
            split-half fit.
        split_half : bool
            Also fit one model on the first half of the folds and set ``split_prediction_``
            (shape like ``Y``): its predictions for the stimuli of the second half (NaN for
            the first half), the single held-out set whose pairing permutation tests are
            exact (see :mod:`workbench.stats`). One more nested fit.
        predict_also : numpy.ndarray, shape (n_stimuli, n_other_bins, n_features), optional
            Other inputs of the same stimuli: each outer fold's map also predicts its test
            stimuli's rows here, into ``also_prediction_`` (n_stimuli, n_other_bins,
            n_targets); e.g. every time bin's features with a map fitted on one bin
            (temporal generalisation).

        Returns
        -------
        predictions : numpy.ndarray, shape like ``Y``
        alphas : numpy.ndarray, shape (n_folds, n_targets)
        """
        alphas, n_inner = self._setup()
        X, Y = np.asarray(X), np.asarray(Y)
        if X.ndim != 3 or Y.ndim != 3 or X.shape[:2] != Y.shape[:2]:
            raise MetricError(f"X (stimuli, time bins, features) and Y (stimuli, time bins, targets) must be 3-D "
                              f"with the same stimuli and bins, got {X.shape} and {Y.shape}")
        if predict_also is not None and (np.ndim(predict_also) != 3 or np.shape(predict_also)[0] != X.shape[0]
                                         or np.shape(predict_also)[2] != X.shape[2]):
            raise MetricError(f"predict_also must be (stimuli, bins, features) with X's stimuli and features "
                              f"{X.shape[0], X.shape[2]}, got {np.shape(predict_also)}")
        if len(folds) < 2:
            raise MetricError(f"cross_val_predict needs at least 2 outer folds (each fold's map is trained on the "
                              f"others), got {len(folds)}")
        n_stimuli = X.shape[0]
        outer = fold_labels(folds, n_stimuli)
        # Inner label of each stimulus, dealt within each outer fold: for outer fold k,
        # inner fold j is every training stimulus with label j (balanced across folds).
        inner = np.zeros(n_stimuli, dtype=np.int64)
        if n_inner > 1:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, 1]))
            codes = np.zeros(n_stimuli, np.int64) if strata is None else pd.factorize(np.asarray(strata))[0]
            offset = 0
            for k in range(len(folds)):
                members = np.flatnonzero(outer == k)
                inner[members], offset = deal_round_robin(codes[members], n_inner, rng, offset)
        self.inner_labels_ = inner
        atoms = outer * n_inner + inner
        atom_outer = np.repeat(np.arange(len(folds)), n_inner)
        atom_inner = np.tile(np.arange(n_inner), len(folds))
        # rows sorted by atom (each atom one block); position[s] is stimulus s's row
        order = np.argsort(atoms, kind="stable")
        position = np.empty_like(order)
        position[order] = np.arange(len(order))
        Xb, Yb = self._prepare(X, Y, order)
        moments = self._data(Xb, Yb, atoms[order], len(folds) * n_inner)
        if n_inner > 1 and len(folds) >= 4:
            # inner fold j of outer fold k is label j's atoms over all folds but k: from label
            # j's kept total, one subtraction (summed afresh: len(folds) - 2 additions, so
            # keeping costs len(folds) - 1 and saves len(folds) * (len(folds) - 3))
            moments.keep_totals([atom_inner == j for j in range(n_inner)])
        predictions = np.empty(Y.shape, dtype=np.float64)
        chosen = np.empty((len(folds), Y.shape[-1]))

        def predict_test(test):
            """The finished fit's predictions for the stimuli ``test``."""
            where = position[test]
            if len(where) == 0:
                return np.empty((0,) + Y.shape[1:])
            # a fold's test stimuli are its whole atoms: one block of the sorted rows, predicted
            # in place, then put in the order of ``test`` (a gather of the narrower predictions)
            first, last = where.min(), where.max() + 1
            rows = Xb[first:last].reshape(-1, X.shape[-1])
            predicted = self._bk.to_numpy(self._predict_prepared(rows)).reshape(last - first, X.shape[1], -1)
            return predicted[where - first].astype(np.float64) + self._y_offset

        if predict_also is not None:
            # prepared like X (the same offsets and scales), so the other rows go through the
            # same backend arithmetic as the fold's own predictions (one thread pool, not two)
            also = np.asarray(predict_also, dtype=np.float64)
            also = self._bk.asarray(((also - self._x_offset) / self._x_scale) if self.standardize
                                    else (also - self._x_offset), dtype=Xb.dtype)
            self.also_prediction_ = np.empty(tuple(predict_also.shape[:2]) + (Y.shape[-1],), dtype=np.float64)
        # every fit (each outer fold's, then the split-half one), each shown by ``progress``
        jobs = [(atom_outer != k, test) for k, (_, test) in enumerate(folds)]
        if split_half:
            first_half = (len(folds) + 1) // 2
            jobs.append((atom_outer < first_half, np.flatnonzero(outer >= first_half)))
        side = SideBySide(moments.concurrent_slots(self.n_jobs))

        def finished():
            """Each job's fit, finished in order. With pieces side by side, the next job's
            pieces are started before this one is finished (as many jobs in progress as
            slots), so that the workers never wait for the end of a fold: a fold's training
            system takes less time than an inner fit, and its 4 pieces alone leave one
            worker idle for the difference."""
            started = []
            for k, (train_mask, _) in enumerate(jobs):
                validation = [train_mask & (atom_inner == j) for j in range(n_inner)]
                started.append(self._begin(moments, train_mask, validation, alphas, side, lane=k % side.slots))
                if len(started) == side.slots:
                    yield self._finish(started.pop(0), alphas)
            while started:
                yield self._finish(started.pop(0), alphas)

        with side:
            # the progress bar counts a job once its fit is finished (zip asks it for the next
            # job first)
            for k, ((_, test), _) in enumerate(zip(jobs if progress is None else progress(jobs), finished())):
                predicted = predict_test(test)
                if k == len(folds):  # the split-half fit
                    self.split_prediction_ = np.full(Y.shape, np.nan)
                    self.split_prediction_[test] = predicted
                    continue
                predictions[test] = predicted
                chosen[k] = self.alpha_
                if predict_also is not None:
                    rows = also[self._bk.index(test)].reshape(-1, X.shape[-1])
                    predicted = self._bk.to_numpy(self._predict_prepared(rows)).astype(np.float64) + self._y_offset
                    self.also_prediction_[test] = predicted.reshape(len(test), predict_also.shape[1], -1)
        return predictions, chosen

    def predict(self, X):
        """Predictions ``(n_samples, n_targets)`` for ``X`` ``(n_samples, n_features)``."""
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_
