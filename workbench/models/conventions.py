"""Calling conventions: how a model is called, and how its calls become time steps.

- ``"frames"``: ``model(frames)`` with ``frames`` ``(batch, steps, C, H, W)``; a recorded
  module runs once per step (the seed zoo, CORnet-RT) or once over the whole sequence, its
  output holding the steps (:func:`sequence_layouts`). The protocol's grey frames after the
  image reach the model, so it sees the stimulus offset.
- ``"frames_time_first"``: the same with ``frames`` ``(steps, batch, C, H, W)``, as recurrent
  code that loops ``for t in range(x.shape[0])`` takes them (ConvLSTM and spiking-network
  code often does); its layers' per-step calls and sequence outputs are read as ``frames``'s.
- ``"video"``: the same as a clip ``(batch, C, steps, H, W)``, as video networks take it
  (torchvision's r3d_18 and r2plus1d_18); 3-D convolutions' outputs ``(batch, C, steps,
  ...)`` give each step's response where their time axis follows the frames.
- ``"static_recurrent"``: ``model(x)`` with ``x`` ``(batch, C, H, W)`` and the recurrence
  inside ``forward`` (CORnet-S, BLnet-style ``times`` loops). A reused module's k-th call is
  step k (``network_per_step``: every call of a module is one pass of the network), or, under
  ``layer_per_step`` ("one step = one area"), step ``k + a`` where ``a`` is the rank of the
  module's top-level area in the order the areas first run. Before its first call a module
  reads 0 (no response yet); after its last it holds its final state: the model was given one
  static image, so it **cannot see the stimulus offset**, and scores say so.
- ``"stepwise"``: ``model(frame, state) -> (output, state)`` once per step, the state it
  returns passed to its next call (``None`` at the first): recurrent models written as a cell
  the caller steps (``forward(x, hidden=None)``). Like ``frames``, the model is shown every
  frame, the grey ones after the image too, so it sees the offset. Detected when ``model(x)``
  returns such a pair and its output changes with the state passed back.
- ``"feedforward"``: ``model(x)`` once per distinct input: the response to the image fills the
  image steps and the response to the grey frame fills the blank steps. With the shared-over-
  time map this is the field's feedforward baseline: one map, no dynamics beyond onset/offset.

A model declares its convention (``model.convention`` or the spec's ``convention``);
otherwise :func:`detect_convention` calls it on two images and decides where unambiguous.
"""

import dataclasses
import inspect
import re
from collections.abc import Mapping

import torch

from ..errors import ExtractionError

CONVENTIONS = ("frames", "frames_time_first", "video", "static_recurrent", "stepwise", "feedforward")
FRAMES = ("frames", "frames_time_first", "video")  # the conventions shown a sequence of frames in one call


class LoopLongerThanProtocol(ExtractionError):
    """A static-recurrent model's loop ran more times than the protocol has steps.
    ``steps_needed``: the steps that would hold every recorded layer's calls."""

    def __init__(self, message, steps_needed):
        super().__init__(message)
        self.steps_needed = steps_needed


def with_forward_options(model, **options):
    """``model`` (the same module) with ``options`` given to its ``forward`` as keywords on
    every call, e.g. ``n_steps=8`` for a recurrent net whose ``forward(x, n_steps)`` has no
    default, or ``return_all=True`` for one that returns every step's readout only when
    asked. A keyword the caller gives itself wins. Names that ``forward`` does not take
    (and no ``**kwargs`` would) are an :class:`~workbench.errors.ExtractionError` naming the
    ones it takes; options a second time replace the first ones.

    Returns
    -------
    torch.nn.Module
        ``model``, with a forward pre-hook that adds the keywords.
    """
    bad = [name for name in options if not (isinstance(name, str) and name.isidentifier())]
    if bad:
        raise ExtractionError(f"forward options must be keyword names, got {bad[0]!r}")
    parameters = _forward_parameters(model)
    if parameters is not None and not any(p.kind is p.VAR_KEYWORD for p in parameters):
        named = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = [name for name in options if name not in named]
        if unknown:
            raise ExtractionError(f"{type(model).__name__}.forward takes no argument {unknown[0]!r} (it takes "
                                  f"{', '.join(named) or 'no keywords'}); check the forward option names")
    previous = getattr(model, "_workbench_forward_options", None)
    if previous is not None:
        previous[1].remove()
    given = dict(options)

    def add_options(module, args, kwargs):
        return args, {**given, **kwargs}

    handle = model.register_forward_pre_hook(add_options, with_kwargs=True)
    model._workbench_forward_options = (given, handle)
    return model


def _forward_parameters(model):
    """The parameters of ``model.forward`` (a list of :class:`inspect.Parameter`), or None
    for a forward whose signature cannot be read (builtin or C-implemented)."""
    try:
        return list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):
        return None


def _forward_options_given(model):
    """The keywords :func:`with_forward_options` gives ``model``'s forward ({} if none)."""
    return getattr(model, "_workbench_forward_options", ({}, None))[0]


def forward_argument_hint(model):
    """How to give the arguments ``model.forward`` needs besides its input (parameters
    without a default after the first, other than a state a cell is stepped with), or ""."""
    parameters = _forward_parameters(model) or []
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p.name for p in positional[1:] + [p for p in parameters if p.kind is p.KEYWORD_ONLY]
                if p.default is p.empty]
    given = _forward_options_given(model)
    required = [name for name in required if name not in given and not _STATE_NAME.search(name)]
    if not required:
        return ""
    table = ", ".join(f"{name} = ..." for name in required)
    options = " ".join(f"--forward-option {name}=VALUE" for name in required)
    return (f"its forward needs {', '.join(required)} besides the input: give "
            f"{'it' if len(required) == 1 else 'them'} with forward_options = {{{table}}} in the model's table "
            f"(or {options})")


# parameter names of a cell's state (``forward(x, state)``), which the stepwise call passes
_STATE_NAME = re.compile(r"state|hidden|^h$|^hx$|^h0$|^c$|memory|carry|prev", re.IGNORECASE)


def model_dtype(model):
    """The floating dtype ``model`` computes in, which its inputs are given: that of its first
    floating parameter (or buffer), float32 when it has none. A model cast with
    ``model.double()`` or ``model.to(torch.bfloat16)`` refuses float32 images."""
    for tensor in (*model.parameters(), *model.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


def check_convention(convention):
    if convention not in CONVENTIONS:
        raise ExtractionError(f"unknown calling convention {convention!r}; the conventions are "
                              "'frames' (model(frames) with (B, T, C, H, W)), 'frames_time_first' (the same with "
                              "(T, B, C, H, W)), 'video' (a clip (B, C, T, H, W)), 'static_recurrent' "
                              "(model(x) with (B, C, H, W), recurrence inside), 'stepwise' (model(frame, state) -> "
                              "(output, state) once per step) and 'feedforward' (model(x) once)")
    return convention


def _laid_out(frames, convention):
    """``frames`` ``(batch, steps, C, H, W)`` as a model of ``convention`` (one of
    :data:`FRAMES`) takes them: as they are, time first, or as a video clip."""
    if convention == "frames_time_first":
        return frames.transpose(0, 1)
    if convention == "video":
        return frames.transpose(1, 2)
    return frames


def call_on_frames(model, frames, convention="frames"):
    """``model`` called on ``frames`` ``(batch, steps, C, H, W)`` laid out as a model of
    ``convention`` (one of :data:`FRAMES`) takes them."""
    return model(_laid_out(frames, convention))


def sees_offset(convention):
    """Whether the model is shown the grey frames after the image."""
    return convention != "static_recurrent"


def detect_convention(model, layers, images, recorder_type):
    """The convention of ``model``, found by calling it on ``images`` (two of them).

    The frames conventions are tried first (a static model rejects a 5-D input loudly):
    ``frames``, where layers run once per step or once over the sequence with a time axis
    (:func:`sequence_layouts`); ``frames_time_first`` when that call ran the layers once per
    image or once over the sequence, and time first more of them respond per step; ``video``
    when neither fits. Then a 4-D call: every recorded layer once is
    ``feedforward`` (or ``stepwise``, when it returned a pair ``(output, state)`` whose
    state, passed back as ``model(x, state)``, changes its output; a state argument without
    a default is given None), some more than once is ``static_recurrent``. Anything else is
    an error naming the conventions (and the input declaration, where the input is why).
    """
    # two different images even when given one (a one-image extraction, e.g. the memory
    # probe's first call): with one, a time-first model's loop over the batch axis runs once,
    # as a layer over the whole sequence does, and cannot be told from it
    sample = _two(images)
    problems, errors = [], []  # errors: the calls' exceptions in full, for _input_hint
    found = _detect_frames(model, layers, sample, recorder_type, problems, errors)
    if found is None:
        found = _detect_static(model, layers, sample, recorder_type, problems, errors)
    if found is not None:
        return found
    hint = forward_argument_hint(model) or _input_hint(sample, errors)
    raise ExtractionError(
        f"cannot tell how to call {type(model).__name__}: " + (hint + ". Otherwise: " if hint else "")
        + "; ".join(problems)
        + ". Declare it: convention = 'frames' | 'frames_time_first' | 'video' | 'static_recurrent' | 'stepwise' | "
          "'feedforward' in the model's config entry (or a `convention` attribute on the model)")


def _recorded_call(model, layers, inputs, recorder_type, call, label, problems, errors, state_argument=False):
    """``(returned, counts, given_state)`` of ``call(inputs)`` with the layers recorded: what
    it returned, each layer's number of calls, and whether a missing state argument was
    given None (``state_argument``: a cell ``forward(x, state)`` without a default).
    ``(None, None, False)`` when the call failed (noted in ``problems``, as ``label``, and
    ``errors``)."""
    with recorder_type(model, layers, transform=lambda name, output: None) as recorder:
        given_state = False
        try:
            try:
                returned = call(inputs.clone())  # its own copy: a forward may overwrite its input
            except TypeError as error:
                if not state_argument or "required positional argument" not in str(error):
                    raise
                recorder.pop()
                returned, given_state = model(inputs.clone(), None), True
        except Exception as error:  # noqa: BLE001 - probing: any failure means "not this convention"
            errors.append(str(error))
            problems.append(f"{label} with {tuple(inputs.shape)} failed "
                            f"({type(error).__name__}: {str(error)[:120]})")
            return None, None, False
        return returned, {name: len(calls) for name, calls in recorder.pop().items()}, given_state


def _detect_frames(model, layers, sample, recorder_type, problems, errors):
    """One of :data:`FRAMES` that ``model`` responds to per step, shown 3 frames of the 2
    images ``sample``, else None (why, in ``problems``)."""
    frames = torch.stack([sample] * 3, 1)
    returned, counts, _ = _recorded_call(model, layers, frames, recorder_type, model, "model(frames)", problems,
                                         errors)
    if counts is not None:
        fit = _frames_fit(model, layers, sample, frames, returned, counts, "frames", recorder_type)
        if fit is not None and fit[1]:
            return fit[0]
        if _per_step(counts, len(sample)):
            # once per image (or once over the sequence): it may loop over the first axis,
            # time first. Shown the frames that way, its layers must then run once per frame
            # (or once over them with a time axis); chosen where more of them do
            other = _other_layout(model, layers, sample, frames, recorder_type, "frames_time_first")
            if other is not None and (other[1] or fit is None):
                return other[0]
        if fit is not None:
            return fit[0]
        if _per_step(counts, len(sample)) and len(sample) in counts.values():
            problems.append(f"model(frames) ran, but the layers were called {counts} times for 3 steps (once per "
                            f"image of {len(sample)}), and shown (steps, batch, C, H, W), time first, not once per "
                            "step either")
        elif not _per_step(counts, 3):
            problems.append(f"model(frames) ran, but the layers were called {counts} times for 3 steps")
        else:
            problems.append(f"model(frames) ran, but no layer's output holds the steps (layers {counts} ran once "
                            "for 3 frames, with no time axis that follows the frames)")
    # a video model takes a clip (batch, C, steps, H, W): with 3 frames of RGB images the
    # call above ran it too, reading the steps as channels, and no time axis followed them
    found = _other_layout(model, layers, sample, frames, recorder_type, "video", problems)
    return None if found is None else found[0]


def _detect_static(model, layers, sample, recorder_type, problems, errors):
    """``stepwise``, ``feedforward`` or ``static_recurrent`` from one call on the 2 images
    ``sample``, else None (why, in ``problems``)."""
    returned, counts, given_state = _recorded_call(model, layers, sample, recorder_type, model, "model(x)", problems,
                                                   errors, state_argument=True)
    if counts is None:
        return None
    if given_state:
        if all(n <= 1 for n in counts.values()) and _takes_its_state(model, sample, returned):
            return "stepwise"
        problems.append("model(x) needs a second argument, and model(x, None) did not return an (output, state) "
                        "whose state, passed back, changes the output")
        return None
    # layers it never called (an unused head, a lateral the first step skips) do not
    # decide: extraction names any that a recording needs
    called = [n for n in counts.values() if n > 0]
    if all(n <= 1 for n in counts.values()) and _takes_its_state(model, sample, returned):
        return "stepwise"
    if not called:
        problems.append(f"model(x) never called layer(s) {list(counts)}")
        return None
    return _repeatable(model, sample, returned, "feedforward" if all(n == 1 for n in called) else "static_recurrent")


def _input_hint(images, errors):
    """Why no call fitted when the cause is the input, not the convention (from the calls'
    ``errors``): a convolution that takes other channels than the images have, or a layer
    whose sizes did not match (a model built for another image size); "" otherwise. Names
    the declaration that fixes it."""
    for error in errors:
        found = re.search(r"to have (\d+) channels, but got (\d+) channels", error)
        if found and int(found.group(1)) != images.shape[1]:  # else the call's layout, not the images, is wrong
            wanted = int(found.group(1))
            named = {1: " (channels = 'grey', --channels grey)", 3: " (channels = 'rgb', --channels rgb)"}
            return (f"a convolution takes {wanted} channel(s) and the images have {images.shape[1]}: declare the "
                    f"input it expects{named.get(wanted, '')}")
    if any("shapes cannot be multiplied" in error or "size mismatch" in error for error in errors):
        return (f"a layer's sizes did not match images of {images.shape[-1]} px: if it was built for another "
                "size, declare input_size (--input-size)")
    return ""


def _same(a, b):
    """Whether two model outputs (tensors, or lists, tuples and dicts of them) are equal up
    to float rounding; other objects are not compared."""
    if torch.is_tensor(a) and torch.is_tensor(b):
        if a.shape != b.shape:
            return False
        a, b = a.float(), b.float()
        scale = float(a.abs().nan_to_num(0, 0, 0).max()) if a.numel() else 0.0
        return bool(torch.allclose(a, b, rtol=1e-4, atol=1e-6 * max(scale, 1.0), equal_nan=True))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[key], b[key]) for key in a)
    return True


def _two(images):
    """The first two of ``images`` ``(n, C, H, W)``, or the one and a second made from it
    (flipped, halved)."""
    return images[:2] if len(images) >= 2 else torch.cat([images, images.flip(-1).flip(-2) * 0.5])


def _per_step(counts, steps):
    """Whether recorded call ``counts`` fit a frames model shown ``steps`` frames: each layer
    once per step or once over the whole sequence (1)."""
    return all(n in (1, steps) for n in counts.values())


def _frames_fit(model, layers, sample, frames, returned, counts, convention, recorder_type):
    """``(convention, complete)`` when ``model``, called on ``frames`` laid out as
    ``convention`` (one of :data:`FRAMES`; returning ``returned``, its layers called
    ``counts`` times), responds per step: every layer once per step or once over the
    sequence, and some layer per step or with a time axis. ``complete``: every layer does
    (extraction names a recorded one that does not, e.g. a classifier of the last step).
    Checked repeatable. None when it does not fit."""
    steps = frames.shape[1]
    if not _per_step(counts, steps):
        return None
    once = [name for name, n in counts.items() if n == 1]
    timed = sequence_layouts(model, once, sample, recorder_type, strict=False, convention=convention) if once else {}
    if not (any(n == steps for n in counts.values()) or timed):
        return None
    return _repeatable(model, _laid_out(frames, convention), returned, convention), len(timed) == len(once)


def _other_layout(model, layers, sample, frames, recorder_type, convention, problems=None):
    """``(convention, complete)`` (``frames_time_first`` or ``video``) when ``model``, shown
    ``frames`` ``(batch, steps, ...)`` in that layout, responds per step (:func:`_frames_fit`),
    else None; ``problems`` (optional) is told why a call that ran does not fit."""
    returned, counts, _ = _recorded_call(model, layers, frames, recorder_type,
                                         lambda shown: call_on_frames(model, shown, convention), convention, [], [])
    if counts is None:
        return None
    fit = _frames_fit(model, layers, sample, frames, returned, counts, convention, recorder_type)
    if fit is None and problems is not None:
        problems.append(f"model(clip) as {convention} (batch, C, steps, H, W) ran, but no recorded layer's output "
                        "holds the steps (one that pools over the whole clip, as a video network's head, has no "
                        "time axis left: record the stages before it)")
    return fit


def _repeatable(model, inputs, returned, convention):
    """``convention``, once a second call on the same ``inputs`` returns what the first did.
    A model that keeps its state from one call to the next (a hidden state kept in an
    attribute and never reset) would carry one batch's responses into the next batch and the
    image's into the grey frame's; a stochastic one gives other numbers in every run."""
    if not _same(model(inputs.clone()), returned):
        raise ExtractionError(
            f"{type(model).__name__} returns other outputs when called twice on the same input (as "
            f"{convention}): it keeps state from one call to the next, or draws random numbers. Fix: reset its "
            "state at the start of forward (a model with a reset method, e.g. a spiking network: name it, reset = "
            "'reset' in the model's table or --reset reset; a library's reset function by module:function, e.g. "
            "reset = 'snntorch.utils:reset' or --reset spikingjelly.activation_based.functional:reset_net), or "
            "return it and take it back, forward(x, state=None) -> (output, state) (convention 'stepwise'); seed "
            "a stochastic model inside forward. Declaring the convention skips this check")
    return convention


def _takes_its_state(model, x, returned):
    """Whether ``model(x)`` returned ``(output, state)`` that ``model(x, state)`` takes back,
    its output then depending on the state: a cell the caller steps. A feedforward model
    returning (logits, features) fails this (its second argument, if any, is not a state
    its output depends on)."""
    if not isinstance(returned, (tuple, list)) or len(returned) != 2 or not torch.is_tensor(returned[0]):
        return False
    try:
        again = model(x.clone(), returned[1])
    except Exception:  # noqa: BLE001 - probing: it does not take its state back
        return False
    if not isinstance(again, (tuple, list)) or len(again) != 2 or not torch.is_tensor(again[0]):
        return False
    return again[0].shape == returned[0].shape and not torch.allclose(again[0].float(), returned[0].float())


# How a frames model's layer that runs once over the whole sequence holds the steps: its
# output's rows as (image, step) pairs ("rows:batch-major", as ``frames.flatten(0, 1)`` folds
# them, e.g. a CNN applied to every frame at once) or (step, image) pairs ("rows:time-major"),
# or a time axis ("axis:1": (batch, steps, ...), nn.GRU(batch_first=True); "axis:0": (steps,
# batch, ...), nn.GRU's default; "axis:2": (batch, C, steps, H, W), a 3-D convolution).
# After a temporal stride S (a video network's later stages), "axis:N/S": one position per S
# steps, each position the response of its S steps
SEQUENCE_LAYOUTS = ("rows:batch-major", "rows:time-major", "axis:0", "axis:1", "axis:2")


def split_steps(output, layout, steps):
    """The per-step outputs ``(batch, ...)`` of one sequence output of ``layout``
    (:data:`SEQUENCE_LAYOUTS`), or None when ``output``'s shape holds no ``steps`` steps."""
    if layout.startswith("rows:"):
        if output.ndim == 0 or output.shape[0] % steps:
            return None
        if layout == "rows:batch-major":
            return output.reshape(output.shape[0] // steps, steps, *output.shape[1:]).unbind(1)
        return output.reshape(steps, output.shape[0] // steps, *output.shape[1:]).unbind(0)
    axis, stride = _axis_and_stride(layout)
    if output.ndim <= max(axis, 1):
        return None
    positions = output.shape[axis]
    if stride == 1:
        return output.unbind(axis) if positions == steps else None
    # after a temporal stride (a pooling or convolution over time), one position per
    # ``stride`` steps: ceil(steps / stride) with padding, floor without
    if positions not in (steps // stride, -(-steps // stride)) or positions == 0:
        return None
    parts = output.unbind(axis)
    return tuple(parts[min(step // stride, positions - 1)] for step in range(steps))


def _axis_and_stride(layout):
    """``(axis, stride)`` of an ``axis:N`` layout (stride 1) or ``axis:N/S``."""
    axis, _, stride = layout[len("axis:"):].partition("/")
    return int(axis), int(stride or 1)


def strided_layers(layouts):
    """``{layer: stride}`` of the layouts (``{layer: layout}``) that hold one time position per
    several steps (a video network's stages after a temporal stride)."""
    return {name: _axis_and_stride(layout)[1] for name, layout in layouts.items()
            if layout.startswith("axis:") and _axis_and_stride(layout)[1] > 1}


def _fitting_layouts(shape, batch, steps):
    found = ["rows:batch-major", "rows:time-major"] if shape and shape[0] == batch * steps else []
    for axis in (0, 1, 2):
        other = 1 if axis == 0 else 0
        if len(shape) > max(axis, other) and shape[axis] == steps and shape[other] == batch:
            found.append(f"axis:{axis}")
    return found


def sequence_layouts(model, layers, images, recorder_type, strict=True, convention="frames"):
    """``{layer: layout}`` for the layers of a frames model that run once over the whole
    sequence rather than once per step (:data:`SEQUENCE_LAYOUTS`); ``{}`` when every layer
    runs once per step.

    Found by calling ``model`` on frames of two images (``images`` ``(n, C, H, W)``, the
    first two used): shown for 3 and for 4 steps, a layer's time axis is the one whose
    length follows the steps (so no axis of features is taken for time), and folded rows
    are ordered by the layout that gives the first image's steps as the model computes
    them for that image alone. A time axis shorter than the steps (after a temporal stride)
    is found from 16 and 32 steps (:func:`_strided_layout`). An :class:`ExtractionError`
    names a layer that fits none (``strict=False``: such layers are left out of the
    answer). ``convention``: how the frames are given (:data:`FRAMES`); the layouts are
    those of the layers' own outputs.
    """
    pair = _two(images)

    def run(frames):
        with recorder_type(model, layers, transform=lambda name, output: output) as recorder:
            try:
                call_on_frames(model, frames, convention)
            except Exception as error:  # noqa: BLE001 - the user's model on other frames: named below
                if not strict:
                    return None
                raise ExtractionError(f"calling the model on {frames.shape[1]} frames of {frames.shape[0]} image(s) "
                                      f"({convention}) failed: {type(error).__name__}: {str(error)[:200]}") from error
            return recorder.pop()

    def frames(batch, steps):
        return torch.stack([batch] * 2 + [torch.zeros_like(batch)] * (steps - 2), 1)

    probes = {}

    def probe(steps, image=None):
        """The layers' calls on ``steps`` frames of the pair (or of one image), made once."""
        if (steps, image) not in probes:
            probes[steps, image] = run(frames(pair if image is None else pair[image:image + 1], steps))
        return probes[steps, image]

    three = run(frames(pair, 3))
    if three is None:  # not strict: no layout is found where the model cannot run
        return {}
    counts = {name: len(calls) for name, calls in three.items()}
    wrong = {name: n for name, n in counts.items() if n not in (1, 3)}
    if wrong and strict:
        once_per_image = convention == "frames" and all(n in (1, len(pair)) for n in counts.values())
        raise ExtractionError(f"model(frames) ran, but the layers were called {counts} times for 3 steps "
                              + ("(once per image of 2: a model that takes (steps, batch, C, H, W) is convention "
                                 "'frames_time_first')" if once_per_image else
                                 "(record modules that run once per step, or once over the whole sequence)"))
    once = [name for name, n in counts.items() if n == 1]
    if not once:
        return {}
    # each image alone: its steps as the model computes them without the other image (a model
    # that takes its frames time first reads the images as steps: the second image's differ)
    four, alone = run(frames(pair, 4)), [run(frames(pair[i:i + 1], 3)) for i in range(2)]
    if four is None or None in alone:  # e.g. a clip's steps read as its channels: they cannot change
        return {}
    layouts = {}
    for name in once:
        if len(four[name]) != 1 or any(len(own[name]) != 1 for own in alone):
            if not strict:
                continue
            raise ExtractionError(f"layer {name!r} ran once over 3 frames but {len(four[name])} times over 4")
        output = three[name][0]
        fitting = [layout for layout in _fitting_layouts(tuple(output.shape), 2, 3)
                   if layout in _fitting_layouts(tuple(four[name][0].shape), 2, 4)]
        matching = []
        for layout in fitting:  # each image's steps as computed with the other, and alone
            together = torch.stack(split_steps(output, layout, 3), 1).float()
            if all(_same_steps(split_steps(own[name][0], layout, 3), together[i:i + 1]) for i, own in enumerate(alone)):
                matching.append(layout)
        if not matching:
            strided = _strided_layout(name, probe, len(pair))
            if strided is not None:
                layouts[name] = strided
                continue
            if not strict:
                continue
            raise ExtractionError(
                f"layer {name!r} ran once for the whole sequence, but its output {tuple(output.shape)} holds "
                "no time axis that follows the steps (looked for (batch x steps) rows, (batch, steps, ...), "
                "(steps, batch, ...) and (batch, C, steps, ...), also after a stride over time of up to 8), so it "
                "has no response per step (a layer that pools over the whole clip, as a video network's head, has "
                "no time axis left; fix: leave it out of the recorded layers, and record the stages before it: "
                "layers = [...] in the config entry, --layers on the command line)")
        # rows of identical steps fit either order: the order frames.flatten(0, 1) gives
        layouts[name] = matching[0]
    return layouts


# sequence lengths that tell a time axis after a temporal stride (of up to 8 in all, as
# r3d_18's last stage) from the steps: 16 and 32 steps give 2 and 4 positions there
_STRIDE_PROBE_STEPS = (16, 32)


def _strided_layout(name, probe, n_images):
    """``"axis:N/S"`` when layer ``name``'s output has a time axis ``N`` with one position
    per ``S`` >= 2 steps (the length follows the steps divided by S, rounded either way,
    for 16 and for 32 steps) and each image's positions are those it gives alone; else
    None. ``probe(steps, image=None)``: the layers' calls on that many frames of the
    ``n_images`` images (or of image ``image`` alone)."""
    long = [probe(steps) for steps in _STRIDE_PROBE_STEPS]
    if any(calls is None or len(calls.get(name, ())) != 1 for calls in long):
        return None
    shapes = [tuple(calls[name][0].shape) for calls in long]
    short = _STRIDE_PROBE_STEPS[0]
    for axis in (0, 1, 2):
        other = 1 if axis == 0 else 0
        if any(len(shape) <= max(axis, other) or shape[other] != n_images for shape in shapes):
            continue
        if shapes[0][axis] < 2:  # one position: no time axis to tell
            continue
        # the strides that both lengths allow, the nearest to steps / positions first (16
        # and 32 steps in 2 and 4 positions: 8, not 7, which rounds down to the same)
        fitting = [stride for stride in range(2, short // 2 + 1)
                   if all(split_steps(calls[name][0], f"axis:{axis}/{stride}", steps) is not None
                          for calls, steps in zip(long, _STRIDE_PROBE_STEPS))]
        for stride in sorted(fitting, key=lambda stride: sum(abs(steps / stride - shape[axis])
                                                             for steps, shape in zip(_STRIDE_PROBE_STEPS, shapes))):
            layout = f"axis:{axis}/{stride}"
            together = torch.stack(split_steps(long[0][name][0], layout, short), 1).float()
            alone = [probe(short, i) for i in range(n_images)]
            if all(own is not None and len(own.get(name, ())) == 1
                   and _same_steps(split_steps(own[name][0], layout, short), together[i:i + 1])
                   for i, own in enumerate(alone)):
                return layout
    return None


def _same_steps(own, together):
    """Whether one image's steps computed alone (``own``, a list of per-step outputs, or None
    where its output holds no steps) equal ``together`` ``(1, steps, ...)``, computed with the
    other image."""
    if own is None:
        return False
    own = torch.stack(own, 1).float()
    scale = float(own.abs().max()) if own.numel() else 0.0
    return own.shape == together.shape and bool(torch.allclose(together, own, rtol=1e-3, atol=1e-3 * scale + 1e-6))


def stepped_layers(model, layers, images, convention, recorder_type):
    """The ``layers`` that give a response per step when ``model`` is called by
    ``convention`` on ``images`` (two of them): called at all (not an unused head or an
    auxiliary classifier that runs only in training) and, for ``frames``, once per step or
    once over the sequence with a time axis. For a model's candidate layers, which nobody
    chose; declared layers are never pruned (extraction names what is wrong with them)."""
    sample = _two(images)
    with recorder_type(model, layers, transform=lambda name, output: None) as recorder:
        if convention in FRAMES:
            call_on_frames(model, torch.stack([sample] * 3, 1), convention)
        elif convention == "stepwise":
            _step_through(model, torch.stack([sample, sample], 1))
        else:
            model(sample.clone())
        counts = {name: len(calls) for name, calls in recorder.pop().items()}
    if convention in FRAMES:
        once = [name for name, n in counts.items() if n == 1]
        timed = (sequence_layouts(model, once, sample, recorder_type, strict=False, convention=convention)
                 if once else {})
        return [name for name in layers if counts[name] == 3 or name in timed]
    return [name for name in layers if counts[name] > 0]


def _area(name):
    return name.split(".")[0]


def run_steps(model, batch, protocol, convention, recorder):
    """Call ``model`` on ``batch`` ``(B, C, H, W)`` by ``convention`` and return the recorded
    outputs as ``name -> list of protocol.n_steps tensors`` (one per step)."""
    n_steps = protocol.n_steps
    if convention == "stepwise":
        # one step at a time, so that each call is known by its step: a module a step skips
        # (a lateral connection with no state yet) reads 0 before its first call and holds
        # its output after one, as a static-recurrent model's modules do
        per_step = {}
        for step, _ in _step_through(model, protocol.frames(batch), after_step=recorder.pop):
            for name, outputs in step.items():
                if len(outputs) > 1:
                    raise ExtractionError(f"layer {name!r} ran {len(outputs)} times in one step of a stepwise "
                                          "model; record modules that run once per step")
                per_step.setdefault(name, []).append(outputs[0] if outputs else None)
        steps = {}
        for name, outputs in per_step.items():
            known = [output for output in outputs if output is not None]
            if not known:
                raise ExtractionError(f"layer {name!r} was never called by the stepwise model")
            held = torch.zeros_like(known[0])
            steps[name] = []
            for output in outputs:
                held = held if output is None else output
                steps[name].append(held)
        return steps
    if convention in FRAMES:
        call_on_frames(model, protocol.frames(batch), convention)
        calls = recorder.pop()
        for name, outputs in calls.items():
            if len(outputs) != n_steps:
                raise ExtractionError(f"layer {name!r} was called {len(outputs)} times for {n_steps} steps; "
                                      "record modules that run once per step, or once over the whole sequence")
        return calls
    if convention == "feedforward":
        model(batch)
        image = recorder.pop()
        blank = None
        if protocol.blank_steps:
            model(torch.zeros_like(batch))
            blank = recorder.pop()
        steps = {}
        for name, outputs in image.items():
            if len(outputs) != 1 or (blank is not None and len(blank[name]) != 1):
                raise ExtractionError(f"layer {name!r} ran {len(outputs)} times in one call of a feedforward model "
                                      "(fix: convention = 'static_recurrent' for a model with internal recurrence, "
                                      "or record a module that runs once)")
            steps[name] = outputs * protocol.image_steps + (blank[name] * protocol.blank_steps if blank else [])
        return steps
    check_convention(convention)
    model(batch)
    order = list(dict.fromkeys(_area(name) for name in recorder.call_order))
    calls = recorder.pop()
    steps = {}
    offsets = {name: order.index(_area(name)) if protocol.unrolling == "layer_per_step" else 0 for name in calls}
    for name, outputs in calls.items():
        if not outputs:
            raise ExtractionError(f"layer {name!r} was never called by model(x)")
        offset = offsets[name]
        if offset + len(outputs) > n_steps:
            raise LoopLongerThanProtocol(
                f"layer {name!r} ran {len(outputs)} times (from step {offset}), more than the protocol's {n_steps} "
                "steps (fix: a protocol with more image_steps + blank_steps)",
                max(offsets[other] + len(calls[other]) for other in calls))
        before = [torch.zeros_like(outputs[0])] * offset
        steps[name] = before + outputs + [outputs[-1]] * (n_steps - offset - len(outputs))
    return steps


def _step_through(model, frames, after_step=None):
    """Call a stepwise model on ``frames`` ``(batch, steps, C, H, W)`` one step at a time,
    threading its state; returns ``(after_step(), output)`` per step when ``after_step`` is
    given (e.g. the recorder's calls of that step), else the outputs."""
    state, outputs = None, []
    for t in range(frames.shape[1]):
        returned = model(frames[:, t], state)
        if not isinstance(returned, (tuple, list)) or len(returned) != 2:
            shape = tuple(returned.shape) if torch.is_tensor(returned) else type(returned).__name__
            raise ExtractionError(f"a stepwise model returns (output, state) from model(frame, state); this one "
                                  f"returned {shape} (fix: return the state with the output, or declare another "
                                  "convention)")
        output, state = returned
        outputs.append(output if after_step is None else (after_step(), output))
    return outputs


def step_readouts(model, images, steps, convention=None, batch_size=32):
    """Per-step readouts ``(batch, n_steps, classes)`` of ``model`` shown the static
    ``images`` ``(batch, C, H, W)``: what reaction times are read from.

    ``"frames"``: ``model(frames)`` with each image held for ``steps`` frames, returning
    ``(batch, steps, classes)`` (or a tuple whose first item is that) or a list of ``steps``
    ``(batch, classes)``; ``"frames_time_first"`` the same with time first (frames ``(steps,
    batch, ...)``, readouts ``(steps, batch, classes)``). ``"static_recurrent"``:
    ``model(images)``, recurrence inside, returning one readout per step of its own loop: a
    list or tuple of ``(batch, classes)`` tensors (BLnet-style) or one ``(batch, n_steps,
    classes)`` tensor. ``"stepwise"``: ``model(frame, state) -> (readout, state)`` once per
    frame. ``None`` (undeclared): found on the first images (:func:`_readout_convention`).
    A feedforward model has one readout, hence no reaction time: an error.

    The images are shown ``batch_size`` at a time (a ratings set of 1,500 images at 224 px
    in one call would need tens of GB), each batch a copy the model may overwrite.
    """
    if convention == "feedforward":
        raise ExtractionError("a feedforward model gives one readout per image, not one per step: reaction times "
                              "need a recurrent model (convention 'frames' or 'static_recurrent')")
    images = images.to(model_dtype(model))

    def held(shown):  # each image held for ``steps`` frames, (batch, steps, C, H, W), the model's own
        return shown[:, None].expand(-1, steps, -1, -1, -1).contiguous()

    attempts = {name: (lambda shown, name=name: call_on_frames(model, held(shown), name)) for name in FRAMES}
    attempts.update(static_recurrent=lambda shown: model(shown.clone()),
                    stepwise=lambda shown: _step_through(model, held(shown)))
    name = convention or _readout_convention(model, images[:4], steps, attempts)
    readouts = []
    for start in range(0, len(images), max(1, int(batch_size))):
        shown = images[start:start + batch_size]
        try:
            output = attempts[name](shown)
        except Exception as error:  # noqa: BLE001 - the user's model: named with the call
            raise ExtractionError(f"calling the model as {'declared' if convention else 'found'} ({name}) failed: "
                                  f"{type(error).__name__}: {str(error)[:200]}") from error
        readouts.append(_as_step_logits(output, name, len(shown), steps).float())
    return torch.cat(readouts)


def _readout_convention(model, images, steps, attempts):
    """How an undeclared model gives per-step readouts, tried on ``images`` (a few): frames if
    it takes them and gives per-step readouts, each image's its own (then time first,
    likewise), else stepwise if the static call returns a state that changes its readout
    when passed back, else the static call; an error naming what each call did."""
    tried = ["frames", "frames_time_first", "static_recurrent", "stepwise"]
    problems, single = [], None
    for name in tried:
        try:
            output = attempts[name](images)
            if name == "static_recurrent":
                single = _one_readout(output, len(images))
        except Exception as error:  # noqa: BLE001 - probing an undeclared model; reported below
            call = {"frames": "model(frames)", "frames_time_first": "model(frames time first)",
                    "static_recurrent": "model(x)"}.get(name, "model(frame, state)")
            problems.append(f"{call} failed ({type(error).__name__}: {str(error)[:120]})")
            continue
        if name == "static_recurrent" and _takes_its_state(model, images, output):
            continue  # (readout, state): a cell the caller steps, whose pair is no list of readouts
        try:
            _as_step_logits(output, name, len(images), steps)
        except ExtractionError as error:
            if name == tried[-1]:
                raise
            problems.append(f"{'model(x)' if name == 'static_recurrent' else 'model(frames)'} ran but gave no "
                            f"per-step readouts ({error})")  # try the next call
            continue
        # frames: a model that takes its frames the other way round gives readouts of the
        # right shape that mix the images (each "image" a moment of the sequence)
        if name in FRAMES and not _own_readouts(
                lambda shown: _as_step_logits(attempts[name](shown), name, len(shown), steps), images):
            problems.append(f"called as {name}, one image's readouts changed with another image of the batch")
            continue
        return name
    hint = forward_argument_hint(model) or _all_steps_hint(model)
    if not hint and single is not None:
        hint = (f"model(x) gives one readout per image, {single} (batch, classes): a feedforward model, which has no "
                "reaction times (they are read from a readout at every step of a recurrent model)")
    raise ExtractionError("cannot call the model for reaction times: " + (hint + ". Otherwise: " if hint else "")
                          + "; ".join(problems)
                          + ". Declare its convention ('frames', 'frames_time_first', 'static_recurrent' or "
                            "'stepwise')")


def _one_readout(output, batch):
    """The shape of ``output``'s single readout ``(batch, classes)`` (a tensor, a tuple's
    first item, or a mapping's or model output's ``logits``), or None when it is not one."""
    items = named_items(output)
    if items is not None:
        output = next((value for key, value in items.items() if "logit" in str(key).lower()), None)
    elif isinstance(output, (tuple, list)) and output and torch.is_tensor(output[0]) and len(output) == 2:
        output = output[0]
    if torch.is_tensor(output) and output.ndim == 2 and output.shape[0] == batch:
        return tuple(output.shape)
    return None


def _all_steps_hint(model):
    """For a model whose ``forward`` has a switch off by default that may return every step
    (``return_all=False``, ``all_steps=False``, ``return_sequence=False``...): how to turn it
    on, or ""."""
    given = _forward_options_given(model)
    switches = [p.name for p in _forward_parameters(model) or [] if p.default is False and p.name not in given
                and _ALL_STEPS_NAME.search(p.name)]
    if not switches:
        return ""
    name = switches[0]
    return (f"its forward takes {name}=False: if {name}=True returns every step's readout, give "
            f"forward_options = {{{name} = true}} in the model's table (or --forward-option {name}=true)")


# names of a forward's switch that returns every step (or every layer's) output
_ALL_STEPS_NAME = re.compile(r"all|seq|step|time|histor|intermediate|every|each|readouts|outputs", re.IGNORECASE)


def _own_readouts(readouts, images):
    """Whether the second image's readouts (``readouts(images)`` ``(batch, steps, classes)``)
    stay the same when the first image is replaced: each image's are its own."""
    pair = _two(images)
    other = torch.stack([pair[0].flip(-1).flip(-2) * 0.5 + 0.25 * pair[0].abs().max(), pair[1]])
    first, second = readouts(pair).float()[1], readouts(other).float()[1]
    scale = float(first.abs().max()) if first.numel() else 0.0
    return first.shape == second.shape and bool(torch.allclose(first, second, rtol=1e-4, atol=1e-5 * max(scale, 1.0)))


def _as_step_logits(output, convention, batch, steps):
    """A model's output as ``(batch, n_steps, classes)``, or an error saying what it gave
    (``steps``: the frames a frames model was shown). A dict (or any mapping, or a
    dataclass: a model output class) is read by the one value that holds per-step readouts
    (where several do, the one whose key names logits)."""
    fields = named_items(output)
    if fields is not None:
        return _step_logits_of_mapping(fields, convention, batch, steps, type(output).__name__)
    if isinstance(output, (list, tuple)) and output and all(torch.is_tensor(o) and o.ndim == 2 for o in output):
        # one readout per step of the model's loop, or per frame (as many as it was shown)
        same = len({tuple(o.shape) for o in output}) == 1 and output[0].shape[0] == batch
        if same and (convention == "static_recurrent" or len(output) == steps):
            return torch.stack(list(output), 1)
    if isinstance(output, (list, tuple)) and output and torch.is_tensor(output[0]) and output[0].ndim == 3:
        output = output[0]  # (logits, states) and the like
    if convention == "frames_time_first" and torch.is_tensor(output) and output.ndim == 3 and \
            output.shape[:2] == (steps, batch):
        return output.transpose(0, 1)  # (steps, batch, classes), as the model took its frames
    if torch.is_tensor(output) and output.ndim == 3 and output.shape[0] == batch:
        return output
    shape = (f"a {type(output).__name__} of {len(output)}" if isinstance(output, (list, tuple))
             else tuple(output.shape) if torch.is_tensor(output) else type(output).__name__)
    raise ExtractionError(f"reaction times need per-step readouts (batch, steps, classes), or, for a model "
                          f"called with one image, a list of (batch, classes) per step; called as {convention}, it "
                          f"returned {shape}")


def named_items(output):
    """A dict's items, or a dataclass's fields (a model output class), as a mapping in their
    order; None for anything else."""
    if isinstance(output, Mapping):
        return output
    if dataclasses.is_dataclass(output) and not isinstance(output, type):
        return {field.name: getattr(output, field.name) for field in dataclasses.fields(output)}
    return None


def _step_logits_of_mapping(output, convention, batch, steps, kind):
    """:func:`_as_step_logits` of a dict-like output (``kind``: the name of its class, for
    messages): its value that holds per-step readouts."""
    found = {}
    for key, value in output.items():
        if isinstance(value, Mapping):
            continue  # one level: a nested dict is the model's business
        try:
            found[key] = _as_step_logits(value, convention, batch, steps)
        except ExtractionError:
            continue
    if len(found) > 1:
        named = {key: value for key, value in found.items() if "logit" in str(key).lower()}
        found = named if len(named) == 1 else found
    if len(found) == 1:
        return next(iter(found.values()))
    keys = ", ".join(repr(key) for key in (found or output))
    if found:
        raise ExtractionError(f"reaction times need one set of per-step readouts; called as {convention}, the model "
                              f"returned a {kind} in which {keys} all hold some (fix: name the "
                              "readouts' key 'logits', or return them alone)")
    raise ExtractionError(f"reaction times need per-step readouts (batch, steps, classes), or, for a model called "
                          f"with one image, a list of (batch, classes) per step; called as {convention}, it returned "
                          f"a {kind} with {keys or 'no keys'}, none of them per-step readouts")
