"""A self-contained HTML report: every figure embedded, every user string escaped."""

import base64
import html

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:72rem;color:#222}
.banner{background:#fff3cd;border:1px solid #e0c36c;padding:.6rem 1rem;font-weight:600}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ccc;padding:.3rem .6rem}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0}img{max-width:100%}code{background:#f3f3f3;padding:0 .2rem}
"""


_SORT_SCRIPT = """
document.querySelectorAll('table.sortable th').forEach(function (th, column) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var ascending = th.getAttribute('data-order') !== 'asc';
    table.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
    th.setAttribute('data-order', ascending ? 'asc' : 'desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = a.cells[column].getAttribute('data-sort'), y = b.cells[column].getAttribute('data-sort');
      var nx = parseFloat(x), ny = parseFloat(y);
      var cmp = (isNaN(nx) || isNaN(ny)) ? String(x).localeCompare(String(y)) : nx - ny;
      return ascending ? cmp : -cmp;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  });
});
"""

_EXTRA_STYLE = """
table.sortable th{cursor:pointer}table.sortable th[data-order=asc]::after{content:' \\25B2'}
table.sortable th[data-order=desc]::after{content:' \\25BC'}.small{font-size:.85em;color:#555}
.error{color:#a00}.scroll{overflow-x:auto}
"""


def _number(value, digits=3):
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if value != value else f"{value:.{digits}f}"


def _score_cell(record, primary):
    """A leaderboard cell: the primary score, its CI and p-value; sorts by the score."""
    if record is None:
        return '<td data-sort="-1e300" class="num">-</td>'
    value = record.get(primary)
    low, high = ((record.get("normalized_ci_low"), record.get("normalized_ci_high")) if primary == "normalized"
                 else (record.get("ci_low"), record.get("ci_high")))
    sort = float(value) if isinstance(value, (int, float)) and value == value else -1e300
    ci = f" [{_number(low)}, {_number(high)}]" if low is not None and low == low else ""
    p = f"<br><span class=small>p = {_number(record.get('p_value'), 4)}</span>" if record.get("p_value") is not None else ""
    return f'<td class="num" data-sort="{sort!r}">{_number(value)}<span class=small>{html.escape(ci)}</span>{p}</td>'


def _table(rows, columns, table_id=None):
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f'<td data-sort="{html.escape(str(row.get(c, "")))}">{html.escape(_number(row[c]) if isinstance(row.get(c), float) else str(row.get(c, "")))}</td>'
        for c in columns) + "</tr>" for row in rows)
    identifier = f' id="{table_id}"' if table_id else ""
    return f'<table class="sortable"{identifier}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _figure(figures, name, caption):
    """The embedded figure ``name`` with its caption, or nothing when it was not drawn."""
    if name not in figures:
        return ""
    encoded = base64.b64encode(figures[name]).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)} (<code>figures/{html.escape(name)}</code>)</figcaption></figure>")


def render_batch_report(scores, config, results, figure_files, provenance):
    """The batch report page: leaderboard, per-benchmark sections, replications, failures.

    Every string that comes from the configuration or the data is escaped.
    """
    from .benchmarks import parse_benchmark

    title = scores["title"]
    figures = dict(figure_files)
    definitions = [parse_benchmark(b["name"]) for b in config.benchmarks]
    scored = [d for d in definitions if not d.model_free]
    by_cell = {}
    for record in scores["scores"]:
        by_cell.setdefault((record["model"], record["benchmark"]), record)
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(title)}</title><style>{_STYLE}{_EXTRA_STYLE}</style></head><body>"]
    if scores["simulated"]:
        parts.append('<p class="banner" id="simulated-banner">Simulated data: benchmarks named <code>sim-*</code>, '
                     "the replications, and any file a simulator wrote come from simulators with planted ground "
                     "truth, not from real recordings.</p>")
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts.append(f"<p class=small>{len(config.models)} models x {len(definitions)} benchmarks; seed "
                 f"{html.escape(str(config.settings['seed']))}; {html.escape(scores['normalization'])}. Click a "
                 "column header to sort.</p>")
    if scored:
        parts.append("<h2>Leaderboard</h2>")
        head = "<th>model</th>" + "".join(
            f"<th>{html.escape(d.name)}<br><span class=small>{html.escape(d.primary)}</span></th>" for d in scored)
        rows = []
        for model in config.models:
            cells = "".join(_score_cell(by_cell.get((model["name"], d.name)), d.primary) for d in scored)
            rows.append(f'<tr><td data-sort="{html.escape(model["name"])}">{html.escape(model["name"])}</td>{cells}</tr>')
        parts.append(f'<div class="scroll"><table class="sortable" id="leaderboard"><thead><tr>{head}</tr></thead>'
                     f"<tbody>{''.join(rows)}</tbody></table></div>")
    families = {d.family for d in definitions}
    family_of = {d.name: d.family for d in definitions}
    by_family = {}
    for record in scores["scores"]:
        by_family.setdefault(family_of[record["benchmark"]], []).append(record)
    if "macaque" in families:
        parts.append("<h2>Macaque recordings: one ridge map shared over time</h2>")
        parts.append(_figure(figures, "encoding_over_time.png",
                             "Median r over sites per time bin (held-out images); grey: sqrt of the ceiling"))
        parts.append("<h3>Layer-to-region map (chosen on the mapping half, scored on the other)</h3>")
        parts.append(_table(by_family.get("macaque", []),
                            ["model", "region", "layer", "value", "ceiling", "normalized", "p_value"]))
    if "fmri" in families:
        rows = by_family.get("fmri", [])
        parts.append("<h2>Blur fMRI: de-noising</h2>")
        parts.append(_figure(figures, "denoising.png",
                             "De-noising index: model (bars) vs brain (marks), 25 % blur, late vs early"))
        parts.append(_table(rows, ["model", "region", "layer", "value", "p_value", "brain_value", "brain_p_value"]))
        parts.append("<h3>Dimensionality of the blurred-image responses</h3>")
        parts.append(_figure(figures, "dimensionality.png",
                             "Participation ratio, late minus early step (model) / bin (brain)"))
        parts.append(_table(rows, ["model", "region", "layer", "pr_early", "pr_late", "brain_pr_early",
                                   "brain_pr_late"]))
    if "human" in families:
        parts.append("<h2>Reaction times vs human uncertainty</h2>")
        parts.append(_figure(figures, "rt_vs_uncertainty.png", "Held-out entropy RT vs human uncertainty D"))
    replications = by_family.get("replication", [])
    if replications:
        parts.append("<h2>Replications of the seed papers</h2>")
        parts.append(_table(replications, ["benchmark", "claim", "value", "p_value", "verdict"], "replications"))
    if scores["failures"]:
        parts.append('<h2 class="error">Failed tasks</h2>')
        parts.append(_table(scores["failures"], ["model", "benchmark", "error"], "failures"))
    parts.append("<h2>Provenance</h2>")
    parts.append(_table([{"key": k, "value": v} for k, v in provenance["versions"].items()], ["key", "value"]))
    parts.append(f"<p class=small>Config: <code>{html.escape(str(config.source))}</code>; input checksums and "
                 "task keys in <code>provenance.json</code>.</p>")
    parts.append(f"<script>{_SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)
