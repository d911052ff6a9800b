"""Memory of this process and of the machine, and a measured probe of a model's extraction:
what the preflight (:mod:`workbench.benchmarks.preflight`) needs to say, before minutes of
work, whether a task fits.

The probe runs the real extraction on one image and on a whole batch with the kernel's
high-water mark reset before each (Linux: ``/proc/self/clear_refs``) and the C heap's free
pages released, so it measures what the model, its calling convention, the recorder and the
reduction actually allocate for a batch (convolution workspaces included). Elsewhere it returns
``None`` and the preflight says it could not measure.
"""

import json

import numpy as np

from ..resources import high_water_bytes, release_free_memory, reset_high_water, rss_bytes


def probe_extraction(model, stimuli, layers, protocol, reduction, convention, device="auto", batch_size=6):
    """Measured extraction memory: ``(fixed, per_image)`` bytes above the resident memory
    before it, with ``fixed + per_image * batch_size`` the measured peak of one batch of
    ``batch_size`` (at most ``len(stimuli)``), or ``None`` where the high-water mark cannot be
    reset.

    Runs :func:`~workbench.models.extract` on the first image (lazy initialisation), then on
    a whole batch, with the C heap's free pages released before each
    (:func:`release_free_memory`). The batch itself is measured, not extrapolated from a few
    images: the peak is not linear in the batch size (CORnet-S at 224 px: 0.18 GB above the
    resident memory for 2 images, 0.19 GB for 6, 0.29 GB for 16, 0.57 GB for 32; one-time
    buffers dominate small batches, activations large ones), so a slope taken on 2 and 6
    images predicted 0.21 GB for 32. Memory depends on the architecture and the shapes, not
    on weight values or image content, so a probe is measured once per process for each
    architecture, image shape, batch size, layers, protocol, reduction, convention and device
    (a report's regions and datasets share it).
    """
    from .extraction import extract

    if rss_bytes() is None or not reset_high_water():
        return None
    batch_size = max(1, min(int(batch_size), len(stimuli)))
    first = np.asarray(stimuli.subset([0]).images)
    key = (type(model).__module__, type(model).__qualname__, repr(model),
           tuple((name, tuple(p.shape), str(p.dtype)) for name, p in model.named_parameters()),
           tuple(layers or ()),
           # where the steps sit on the time axis does not change what is allocated
           None if protocol is None else (protocol.image_steps, protocol.blank_steps, protocol.unrolling),
           json.dumps(reduction.spec() if reduction is not None else None, sort_keys=True, default=str),
           str(convention), first.shape, str(first.dtype), str(device), batch_size)
    if key in _PROBES:
        return _PROBES[key]
    peaks = {}
    for size in dict.fromkeys((1, batch_size)):  # one image first: lazy initialisation
        subset = stimuli.subset(list(range(size)))
        release_free_memory()
        before = rss_bytes()
        reset_high_water()
        extract(model, subset, layers=layers, protocol=protocol, batch_size=size, device=device, progress=False,
                reduction=reduction, convention=convention)
        peaks[size] = max(high_water_bytes() - before, 0)
    per_image = max((peaks[batch_size] - peaks[1]) / (batch_size - 1), 0.0) if batch_size > 1 else 0.0
    _PROBES[key] = (max(peaks[batch_size] - batch_size * per_image, 0.0), per_image)
    return _PROBES[key]


_PROBES = {}
