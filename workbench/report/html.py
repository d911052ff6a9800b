"""A self-contained HTML report: every figure embedded, every user string escaped."""

import base64
import html

from ..stats.permutation import p_floor_text

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
    """A leaderboard cell: the primary score, its CI and p-value; sorts by the score.

    The CI is ``ci_low``/``ci_high`` for ``value``, else ``<primary>_ci_low``/``_high``."""
    if record is None:
        return '<td data-sort="-1e300" class="num">-</td>'
    value = record.get(primary)
    prefix = "" if primary == "value" else f"{primary}_"
    low, high = record.get(f"{prefix}ci_low"), record.get(f"{prefix}ci_high")
    sort = float(value) if isinstance(value, (int, float)) and value == value else -1e300
    ci = f" [{_number(low)}, {_number(high)}]" if low is not None and low == low else ""
    p = (f"<br><span class=small>{html.escape(p_floor_text(record.get('p_value'), record.get('null_n')))}</span>"
         if record.get("p_value") is not None else "")
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


def _section(section):
    """A benchmark family's panel: title, explanation, figures and tables."""
    parts = [f"<h2>{html.escape(section.title)}</h2>"]
    if section.explanation:
        parts.append(f"<p class=small>{html.escape(section.explanation)}</p>")
    for name, png, caption in section.figures:
        parts.append(_figure({name: png}, name, caption))
    for caption, rows, columns in section.tables:
        parts.append(f"<h3>{html.escape(caption)}</h3>")
        parts.append(f'<div class="scroll">{_table(rows, columns)}</div>')
    return "\n".join(parts)


def render_batch_report(scores, config, benchmarks, sections, provenance):
    """The batch report page: leaderboard, one section per benchmark panel, failures,
    provenance.

    Every string that comes from the configuration or the data is escaped.
    """
    title = scores["title"]
    scored = [b for b in benchmarks if not b.model_free]
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
    parts.append(f"<p class=small>{len(config.models)} models x {len(benchmarks)} benchmarks; seed "
                 f"{html.escape(str(config.settings['seed']))}; {html.escape(scores['normalization'])}. Click a "
                 "column header to sort.</p>")
    if scored:
        parts.append("<h2>Leaderboard</h2>")
        head = "<th>model</th>" + "".join(
            f"<th>{html.escape(b.identifier)}<br><span class=small>{html.escape(b.primary)}</span></th>"
            for b in scored)
        rows = []
        for model in config.models:
            cells = "".join(_score_cell(by_cell.get((model["name"], b.identifier)), b.primary) for b in scored)
            rows.append(f'<tr><td data-sort="{html.escape(model["name"])}">{html.escape(model["name"])}</td>{cells}</tr>')
        parts.append(f'<div class="scroll"><table class="sortable" id="leaderboard"><thead><tr>{head}</tr></thead>'
                     f"<tbody>{''.join(rows)}</tbody></table></div>")
    parts.extend(_section(section) for section in sections)
    if scores["failures"]:
        parts.append('<h2 class="error">Failed tasks</h2>')
        parts.append(_table(scores["failures"], ["model", "benchmark", "error"], "failures"))
    if scores.get("warnings"):
        parts.append("<h2>Data warnings</h2>")
        parts.append("<p class=small>What the data loaders warned about while scoring (the scores above include "
                     "these data as described).</p>")
        parts.append(_table(scores["warnings"], ["model", "benchmark", "warning"], "data-warnings"))
    parts.append("<h2>Provenance</h2>")
    parts.append(_table([{"key": k, "value": v} for k, v in provenance["versions"].items()], ["key", "value"]))
    parts.append(_citations(benchmarks))
    parts.append(f"<p class=small>Config: <code>{html.escape(str(config.source))}</code>; input checksums and "
                 "task keys in <code>provenance.json</code>.</p>")
    parts.append(f"<script>{_SORT_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _citations(benchmarks):
    """The benchmarks' versions and BibTeX, once per distinct citation."""
    rows = [{"benchmark": b.identifier, "version": b.version} for b in benchmarks]
    cited = list(dict.fromkeys(b.citation for b in benchmarks if b.citation))
    bibtex = "".join(f"<pre class=small>{html.escape(text)}</pre>" for text in cited)
    return f"<h3>Benchmarks and citations</h3>{_table(rows, ['benchmark', 'version'])}{bibtex}"
