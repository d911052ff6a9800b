"""Score records: the one result type every summary, test and benchmark returns.

A :class:`Score` is one row of a tidy table: one model on one benchmark, for one group of
sites (a region, an ROI, or none) and optionally one time bin. Its fields are the
contract's (``docs/DESIGN.md`` section 3); a metric's own fields go in ``extra``. A
:class:`Scores` collection is a list of them with ``to_frame()`` (pandas) and
``to_dataset()`` (xarray), and round-trips through JSON (``to_dicts``/``from_dicts``).

``scores.json`` schema (one object per record): every field below at the top level, then
the ``extra`` fields merged in at the top level too (they never shadow a field); a value
that is not finite is written as ``null``. Reading it back with :meth:`Score.from_dict`
puts every unknown key into ``extra``.

For code written against plain dicts, a Score also answers ``score["value"]``,
``score.get("layer")``, ``"layer" in score`` and ``dict(score)`` over the same flat view;
``score["group"]`` is the region (the name the summaries used before).
"""

import math
from dataclasses import dataclass, field, fields

NAN = float("nan")


@dataclass
class Score:
    """One score record.

    Attributes
    ----------
    value : float
        The benchmark's statistic (e.g. median Pearson r over sites, mean de-noising
        index d, Spearman rho); its meaning and unit are in ``units``.
    model, benchmark : str or None
        Display name of the model; the benchmark's identifier.
    benchmark_version : str or None
        The benchmark's version: a changed definition is a new version.
    region : str or None
        The group of sites: region (V4, IT), ROI (V1, LOC) or None for a whole dataset.
    time_bin : float or None
        Start of the time bin in ms, for per-bin records; None for summaries over time.
    ceiling, normalized : float
        The data's reliability on the scale of ``value`` squared (split-half
        Spearman-Brown), and ``sign(value) value**2 / ceiling``; NaN where undefined.
    p_value, p_fwe, q_value : float
        Uncorrected, family-wise (max-T) and FDR-adjusted p-values; NaN where not tested.
    ci_low, ci_high : float
        Confidence interval of ``value``.
    n : int or None
        Sample size behind ``value`` (sites, image pairs, images).
    null_n : int or None
        Draws in the permutation null.
    seed : int or None
    simulated : bool or None
        True when any input was simulated.
    units : str or None
        What ``value`` is, e.g. ``"pearson_r"``.
    extra : dict
        The metric's own fields (layer, data source, claim, verdict, ...).
    """

    value: float = NAN
    model: str = None
    benchmark: str = None
    benchmark_version: str = None
    region: str = None
    time_bin: float = None
    ceiling: float = NAN
    normalized: float = NAN
    p_value: float = NAN
    p_fwe: float = NAN
    q_value: float = NAN
    ci_low: float = NAN
    ci_high: float = NAN
    n: int = None
    null_n: int = None
    seed: int = None
    simulated: bool = None
    units: str = None
    extra: dict = field(default_factory=dict)

    _ALIASES = {"group": "region"}

    # ---------------------------------------------------------------- serialisation
    def to_dict(self):
        """A flat dict: the fields, then ``extra``'s entries (JSON-able as they are)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        for key, value in self.extra.items():
            out.setdefault(key, value)
        return out

    @classmethod
    def from_dict(cls, data):
        """The inverse of :meth:`to_dict` (``null`` floats become NaN; unknown keys go to
        ``extra``; a legacy ``group`` key is the region)."""
        names = {f.name for f in fields(cls)} - {"extra"}
        data = dict(data)
        if "group" in data and "region" not in data:
            data["region"] = data.pop("group")
        known = {k: v for k, v in data.items() if k in names}
        for key in ("value", "ceiling", "normalized", "p_value", "p_fwe", "q_value", "ci_low", "ci_high"):
            if key in known and known[key] is None:
                known[key] = NAN
        extra = dict(data.get("extra") or {})
        extra.update({k: v for k, v in data.items() if k not in names and k != "extra"})
        return cls(**known, extra=extra)

    def replace(self, **changes):
        """A copy with fields changed (unknown names go to ``extra``)."""
        names = {f.name for f in fields(self)}
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["extra"] = dict(self.extra)
        for key, value in changes.items():
            if key in names:
                data[key] = value
            else:
                data["extra"][key] = value
        return type(self)(**data)

    # ---------------------------------------------------------------- mapping view
    def __getitem__(self, key):
        key = self._ALIASES.get(key, key)
        if key != "extra" and key in self.__dataclass_fields__:
            return getattr(self, key)
        return self.extra[key]

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key):
        key = self._ALIASES.get(key, key)
        return (key in self.__dataclass_fields__ and key != "extra") or key in self.extra

    def keys(self):
        return self.to_dict().keys()

    def items(self):
        return self.to_dict().items()

    def __iter__(self):
        return iter(self.keys())

    def summary(self):
        """One line: model, benchmark, region, value with CI, p."""
        parts = [str(self.model or "-"), str(self.benchmark or "-")]
        if self.region:
            parts.append(str(self.region))
        text = " ".join(parts) + f": {self.value:.4g}"
        if finite_number(self.ci_low) and finite_number(self.ci_high):
            text += f" [{self.ci_low:.4g}, {self.ci_high:.4g}]"
        if finite_number(self.p_value):
            text += f", p = {self.p_value:.4g}"
        return text


def finite_number(value):
    """Whether a record's field holds a finite number to print (not None, NaN, text or a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


class Scores(list):
    """A list of :class:`Score` with tabular views.

    Indexing by a string looks a score up by its region (``scores["IT"]``), for results with
    one score per region; ``scores.get("IT")`` gives None when there is none.
    """

    def __init__(self, items=()):
        super().__init__(item if isinstance(item, Score) else Score.from_dict(item) for item in items)

    def __getitem__(self, index):
        if isinstance(index, str):
            found = [score for score in self if score.region == index]
            if len(found) != 1:
                raise KeyError(f"{len(found)} scores with region {index!r}; regions: "
                               f"{[s.region for s in self]}")
            return found[0]
        item = super().__getitem__(index)
        return Scores(item) if isinstance(index, slice) else item

    def get(self, region, default=None):
        """The score of ``region``, or ``default``."""
        try:
            return self[region]
        except KeyError:
            return default

    def regions(self):
        return [score.region for score in self]

    def to_dicts(self):
        return [score.to_dict() for score in self]

    @classmethod
    def from_dicts(cls, records):
        return cls(Score.from_dict(record) for record in records)

    def to_frame(self):
        """A pandas DataFrame, one row per score, the fields first then every extra column."""
        import pandas as pd

        field_names = [f.name for f in fields(Score) if f.name != "extra"]
        frame = pd.DataFrame(self.to_dicts())
        if frame.empty:
            return pd.DataFrame(columns=field_names)
        return frame[field_names + [c for c in frame.columns if c not in field_names]]

    def to_dataset(self):
        """An ``xarray.Dataset`` over a ``score`` dim: one variable per column."""
        import xarray as xr

        import pandas as pd

        frame = self.to_frame()
        data_vars = {}
        for column in frame.columns:
            values = frame[column]
            if not pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
                present = values[values.notna()]
                if present.map(lambda v: isinstance(v, str)).all():
                    values = values.where(values.notna(), "")  # text column: missing is ""
                elif present.map(lambda v: isinstance(v, (bool, int, float))).all():
                    values = pd.to_numeric(values.map(lambda v: float(v) if pd.notna(v) else float("nan")))
                else:
                    values = values.map(lambda v: "" if not isinstance(v, (list, dict)) and pd.isna(v) else str(v))
            data_vars[column] = ("score", values.to_numpy())
        return xr.Dataset(data_vars, coords={"score": range(len(frame))})

    def where(self, **criteria):
        """The scores whose fields (or extra fields) equal every ``criteria`` value."""
        return Scores(s for s in self if all(s.get(k) == v for k, v in criteria.items()))
