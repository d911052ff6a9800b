"""On-the-fly feature reductions applied to every recorded layer output, on its device.

A recorded output ``(batch, C, H, W)`` (or ``(batch, C)``) becomes ``(batch, features)``
before it leaves the accelerator, so memory and disk scale with the reduced size. Every
reduction is deterministic given its parameters, and :meth:`Reduction.spec` goes into the
activation cache key, so a changed reduction is a cache miss.

- :class:`SpatialPool`: average pooling to a ``size x size`` grid per channel (keeps
  ``channel``, ``y``, ``x``).
- :class:`SparseRandomProjection`: a seeded very sparse random projection (Li, Hastie &
  Church 2006; density ``1/sqrt(features)``), which preserves distances in expectation.
- :class:`PCA`: principal components fitted on a seeded subset of stimuli (all their
  steps), then applied to every stimulus.

Projected features mix channels and positions: their ``channel``, ``y`` and ``x`` coords
are -1 and a ``component`` coord numbers them.
"""

import warnings
import zlib

import numpy as np
import torch

from ..errors import ExtractionError, check_count


def _flat(output):
    return output.reshape(output.shape[0], -1).float()


def unit_coords(layer, shape):
    """Neuroid coords of the units of a layer output of per-sample ``shape``: (C,), (C, H,
    W), or (L, D), a sequence of L tokens of D features (a transformer block's output; ``y``
    is then the token and ``channel`` the feature)."""
    if len(shape) == 3:
        channel, y, x = (a.ravel() for a in np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"))
    elif len(shape) == 2:  # flattened token by token, as reshape(batch, -1) reads (L, D)
        y, channel = (a.ravel() for a in np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij"))
        x = np.zeros_like(channel)
    elif len(shape) == 1:
        channel = np.arange(shape[0])
        y = x = np.zeros_like(channel)
    else:
        raise ExtractionError(
            f"layer {layer!r} outputs per-sample shape {tuple(shape)}; expected (C,), (C, H, W) or tokens (L, D) "
            "(fix: record another module, or reduce it with a projection)"
        )
    ids = [f"{layer}/{c}/{j}/{i}" for c, j, i in zip(channel, y, x)]
    return {"neuroid_id": np.array(ids, dtype=object), "layer": np.full(len(ids), layer, dtype=object),
            "channel": channel, "y": y, "x": x}


def _component_coords(layer, n_components):
    component = np.arange(n_components)
    minus = np.full(n_components, -1)
    return {"neuroid_id": np.array([f"{layer}/pc{k}" for k in component], dtype=object),
            "layer": np.full(n_components, layer, dtype=object),
            "channel": minus, "y": minus, "x": minus, "component": component}


class Reduction:
    """No reduction: every unit of every layer (the base class of all reductions)."""

    needs_fit = False

    def spec(self):
        """JSON-able description (class + parameters) for cache keys and provenance."""
        return {"reduction": type(self).__name__, **self._params()}

    def _params(self):
        return {}

    def fit(self, layer, samples):
        """Fit on ``samples`` ``(rows, C[, H, W])`` of one layer (only if ``needs_fit``)."""

    def __call__(self, layer, output):
        """``(batch, C[, H, W])`` -> ``(batch, features)`` float32, same device."""
        return _flat(output)

    def coords(self, layer, shape):
        """Neuroid coords for the reduced features of ``layer`` (per-sample ``shape``)."""
        return unit_coords(layer, shape)


class SpatialPool(Reduction):
    """Average-pool every channel to a ``size x size`` grid (adaptive, so any H, W).

    ``y``/``x`` then index the pooled grid. 1-D outputs ``(batch, C)`` pass unchanged.
    """

    def __init__(self, size=4):
        if int(size) < 1:
            raise ExtractionError(f"SpatialPool size must be >= 1, got {size}")
        self.size = int(size)

    def _params(self):
        return {"size": self.size}

    def __call__(self, layer, output):
        if output.ndim == 4:
            height, width = output.shape[-2:]
            if height % self.size == 0 and width % self.size == 0:  # same result, less work
                output = torch.nn.functional.avg_pool2d(output.float(), (height // self.size, width // self.size))
            else:
                output = torch.nn.functional.adaptive_avg_pool2d(output.float(), self.size)
        return _flat(output)

    def coords(self, layer, shape):
        if len(shape) == 3:
            shape = (shape[0], self.size, self.size)
        return unit_coords(layer, shape)


class SparseRandomProjection(Reduction):
    """Project each layer's flattened output onto ``n_components`` seeded sparse directions.

    Entries of the ``(n_components, features)`` matrix are ``+-sqrt(1 / (density *
    n_components))`` with probability ``density / 2`` each and 0 otherwise, with
    ``density = 1 / sqrt(features)``; the matrix of a layer is seeded by ``seed`` and the
    layer name, so it is the same in every run and on every device. A layer with no more
    than ``n_components`` features is an error, or, with ``keep_small=True``, recorded
    unchanged (every unit: projecting it could not reduce it).
    """

    def __init__(self, n_components=256, seed=0, keep_small=False):
        check_count("n_components", n_components, 1, error=ExtractionError)
        check_count("seed", seed, 0, error=ExtractionError)
        self.n_components = int(n_components)
        self.seed = int(seed)
        self.keep_small = bool(keep_small)
        self._matrices = {}

    def _params(self):
        return {"n_components": self.n_components, "seed": self.seed, "keep_small": self.keep_small}

    def _passes(self, n_features):
        return self.keep_small and n_features <= self.n_components

    def matrix(self, layer, n_features, device):
        """The layer's projection as a sparse COO tensor ``(n_components, n_features)``."""
        key = (layer, str(device))
        if key not in self._matrices:
            if self.n_components >= n_features:
                raise ExtractionError(
                    f"layer {layer!r} has {n_features} features; a projection to "
                    f"{self.n_components} components would not reduce it (fix: fewer components)"
                )
            rng = np.random.default_rng([self.seed, zlib.crc32(layer.encode())])
            density = 1.0 / np.sqrt(n_features)
            nnz = rng.binomial(self.n_components * n_features, density)
            flat = rng.choice(self.n_components * n_features, size=nnz, replace=False)
            signs = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=nnz)
            scale = np.float32(np.sqrt(1.0 / (density * self.n_components)))
            index = torch.from_numpy(np.stack(np.divmod(flat, n_features)))
            matrix = torch.sparse_coo_tensor(index, torch.from_numpy(signs * scale),
                                             (self.n_components, n_features),
                                             check_invariants=True).coalesce()
            self._matrices[key] = matrix.to(device)
        return self._matrices[key]

    def __call__(self, layer, output):
        flat = _flat(output)
        if self._passes(flat.shape[1]):
            return flat
        operator = self._operator(layer, flat.shape[1], flat.device)
        # the sparse product walks the dense operand by rows of the transposed layer, so a
        # contiguous (features, batch) copy reads each gathered unit's batch in one run; in
        # float32 under an autocast forward pass too (the kernels have no half precision)
        with torch.autocast(flat.device.type, enabled=False):
            return (operator @ flat.T.contiguous()).T

    def _operator(self, layer, n_features, device):
        """:meth:`matrix` in the layout the product is fastest in: compressed rows (CSR) on
        the CPU and CUDA (3-4x faster than COO on a 200k-unit layer), COO elsewhere."""
        key = (layer, str(device), "operator")
        if key not in self._matrices:
            matrix = self.matrix(layer, n_features, device)
            if device.type in ("cpu", "cuda"):
                with warnings.catch_warnings():  # "sparse CSR support is in beta": used as documented
                    warnings.simplefilter("ignore", UserWarning)
                    matrix = matrix.to_sparse_csr()
            self._matrices[key] = matrix
        return self._matrices[key]

    def coords(self, layer, shape):
        if self._passes(int(np.prod(shape))):
            # kept units carry component -1, so layers of both kinds share one coord set
            coords = unit_coords(layer, shape)
            return {**coords, "component": np.full(len(coords["layer"]), -1)}
        return _component_coords(layer, self.n_components)


class PCA(Reduction):
    """Principal components of each layer, fitted on ``n_fit`` seeded stimuli x all steps.

    The fit holds ``n_fit * steps * features`` floats of one layer at a time; pool first
    (or lower ``n_fit``) for very wide layers. Components are sign-fixed (largest
    absolute loading positive), so the same data give the same features.

    Components are not whitened, but an estimator that standardises each feature
    (:class:`~workbench.metrics.RidgeCV`'s default) whitens them, and its penalty then no
    longer shrinks the low-variance components more than the leading ones. On the simulated
    recording's V4 (the generating network's layer, 100 images), ``PCA(256)`` kept 0.67 of
    the ceiling with the standardising ridge and 0.93 with ``RidgeCV(standardize=False)``,
    against 0.86 for a 256-component :class:`SparseRandomProjection` either way. Pair it
    with ``RidgeCV(standardize=False)``.
    """

    needs_fit = True

    def __init__(self, n_components=100, n_fit=200, seed=0):
        check_count("n_components", n_components, 1, error=ExtractionError)
        check_count("n_fit", n_fit, 2, "(PCA needs two images)", error=ExtractionError)
        check_count("seed", seed, 0, error=ExtractionError)
        self.n_components = int(n_components)
        self.n_fit = int(n_fit)
        self.seed = int(seed)
        self.mean_ = {}
        self.components_ = {}

    def _params(self):
        return {"n_components": self.n_components, "n_fit": self.n_fit, "seed": self.seed}

    def fit(self, layer, samples):
        flat = _flat(samples).double()
        if self.n_components > min(flat.shape):
            raise ExtractionError(
                f"PCA of layer {layer!r}: {self.n_components} components from "
                f"{flat.shape[0]} samples x {flat.shape[1]} features is not possible "
                "(fix: fewer components or a larger n_fit)"
            )
        mean = flat.mean(dim=0)
        _, _, vh = torch.linalg.svd(flat - mean, full_matrices=False)
        components = vh[: self.n_components]
        signs = torch.sign(components.gather(1, components.abs().argmax(dim=1, keepdim=True)))
        self.mean_[layer] = mean.float()
        self.components_[layer] = (components * signs).float()

    def __call__(self, layer, output):
        if layer not in self.components_:
            raise ExtractionError(f"PCA for layer {layer!r} used before it was fitted")
        flat = _flat(output)
        mean = self.mean_[layer].to(flat.device)
        return (flat - mean) @ self.components_[layer].to(flat.device).T

    def coords(self, layer, shape):
        return _component_coords(layer, self.n_components)
