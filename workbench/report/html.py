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


def _cell(value):
    if isinstance(value, float):
        return f'<td class="num">{value:.3f}</td>' if value == value else '<td class="num">n/a</td>'
    if isinstance(value, int):
        return f'<td class="num">{value}</td>'
    return f"<td>{html.escape(str(value))}</td>"


def render_report(title, records, columns, figures=(), notes=(), simulated=False, provenance=None):
    """Return the report page as a string.

    Parameters
    ----------
    title : str
    records : list of dict
        Table rows; ``columns`` picks and orders the keys shown.
    columns : list of str
    figures : sequence of (str, bytes)
        Caption and PNG bytes, embedded as data URIs.
    notes : sequence of str
        Paragraphs shown under the title (plain text, escaped).
    simulated : bool
        Show the 'simulated data' banner.
    provenance : dict, optional
        Shown as a key/value table at the end.
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    if simulated:
        parts.append(
            '<p class="banner" id="simulated-banner">Simulated data: these scores come from '
            "simulators with planted ground truth, not from real recordings.</p>"
        )
    parts.append(f"<h1>{html.escape(title)}</h1>")
    parts += [f"<p>{html.escape(note)}</p>" for note in notes]
    parts.append('<table id="scores"><thead><tr>')
    parts += [f"<th>{html.escape(column)}</th>" for column in columns]
    parts.append("</tr></thead><tbody>")
    for record in records:
        parts.append("<tr>" + "".join(_cell(record.get(column, "")) for column in columns) + "</tr>")
    parts.append("</tbody></table>")
    for caption, png in figures:
        encoded = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{encoded}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>"
        )
    if provenance:
        parts.append("<h2>Provenance</h2><table>")
        parts += [
            f"<tr><th>{html.escape(str(key))}</th><td><code>{html.escape(str(value))}</code></td></tr>"
            for key, value in provenance.items()
        ]
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)
