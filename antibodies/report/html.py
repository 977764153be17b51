"""Self-contained HTML from DataFrames and PNG bytes: no file or network access at view time.

Images are inlined as ``data:`` URIs, the style sheet and the small script
(click a table header to sort by it) are inline too, so ``index.html`` can
be mailed or archived on its own. Once loaded, the page marks ``<body>`` with
``data-ready="true"`` and ``data-broken-images="<n>"`` (and logs a console
error if an image failed), so a headless browser can check it.
"""
import base64
import html
import math

import numpy as np
import pandas as pd

from ..analysis.layout import ROWS, plate_shape
from .columns import readable_columns, serum_label

__all__ = [
    "Figure",
    "Section",
    "data_uri",
    "format_value",
    "figure_html",
    "figures_html",
    "table_html",
    "key_value_html",
    "plate_grid_html",
    "well_title",
    "page_html",
]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 0 1.5em 2em; color: #222; }
header { border-bottom: 2px solid #444; margin-bottom: 1em; }
nav a { margin-right: 1em; }
h2 { border-bottom: 1px solid #bbb; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 2px 6px; text-align: left; }
td.num { text-align: right; }
.scroll { overflow-x: auto; max-width: 100%; }
.scroll td { white-space: nowrap; }
th { background: #eee; cursor: pointer; }
tr.outlier td { background: #fde2e2; }
caption { text-align: left; font-weight: bold; padding: 4px 0; }
.figures { display: flex; flex-wrap: wrap; gap: 1em; align-items: flex-start; }
figure { margin: 0; }
figcaption { font-size: 0.85em; max-width: 30em; }
table.plate td { width: 3.4em; height: 2.4em; text-align: center; position: relative; font-size: 0.8em; }
table.plate td.positive { background: #f4a582; }
table.plate td.inconclusive { background: #f7f7c8; }
table.plate td.negative { background: #92c5de; }
table.plate td.missing { background: #f0f0f0; }
table.plate td.empty { background: #fff; color: #bbb; }
table.plate td.outlier { background: #ddd; color: #666; text-decoration: line-through; }
p.warning { background: #fff3cd; border-left: 4px solid #d39e00; padding: 0.4em 0.8em; }
table.plate td.outlier::after { content: "\\2715"; position: absolute; inset: 0; color: #c00;
  font-size: 2em; line-height: 1.2em; text-decoration: none; opacity: 0.6; }
.legend span { display: inline-block; padding: 0 0.5em; margin-right: 0.5em; border: 1px solid #ccc; }
dl.summary { display: grid; grid-template-columns: max-content auto; gap: 2px 1em; }
dl.summary dt { font-weight: bold; }
dl.summary dd { margin: 0; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var broken = Array.prototype.filter.call(document.images, function (img) { return !img.naturalWidth; }).length;
  document.body.setAttribute("data-broken-images", String(broken));
  if (broken) { console.error(broken + " image(s) of the report failed to load"); }
});
document.addEventListener("DOMContentLoaded", function () {
  document.body.setAttribute("data-ready", "true");
  document.querySelectorAll("table.sortable").forEach(function (table) {
    table.querySelectorAll("thead th").forEach(function (header, column) {
      header.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var ascending = header.getAttribute("data-order") !== "ascending";
        rows.sort(function (a, b) {
          var x = a.cells[column].textContent, y = b.cells[column].textContent;
          var nx = parseFloat(x), ny = parseFloat(y);
          var order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
        header.setAttribute("data-order", ascending ? "ascending" : "descending");
      });
    });
  });
});
"""


class Figure:
    """A PNG with its caption."""

    def __init__(self, png, caption, alt=None):
        self.png, self.caption, self.alt = png, caption, alt or caption


class Section:
    """A titled part of the page with an anchor for the navigation bar."""

    def __init__(self, anchor, title, body):
        self.anchor, self.title, self.body = anchor, title, body


def data_uri(png):
    """Return a ``data:image/png;base64`` URI of PNG bytes.

    Examples
    --------
    >>> data_uri(b"abc")
    'data:image/png;base64,YWJj'
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def format_value(value):
    """Short text of a table value: 3 significant digits, empty for missing.

    Examples
    --------
    >>> [format_value(v) for v in (1.23456, 151, 2942.5, float("nan"), True, pd.NA, "x")]
    ['1.23', '151', '2942', '', 'yes', '', 'x']
    """
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(value)
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return ""
        return f"{value:.0f}" if math.isfinite(value) and abs(value) >= 1000 else f"{value:.3g}"
    return str(value)


def figure_html(figure):
    """An ``<img>`` with the PNG inlined, inside a captioned ``<figure>``."""
    alt = html.escape(figure.alt, quote=True)
    return (f'<figure><img src="{data_uri(figure.png)}" alt="{alt}">'
            f"<figcaption>{html.escape(figure.caption)}</figcaption></figure>")


def figures_html(figures):
    """Figures side by side."""
    return '<div class="figures">' + "".join(figure_html(f) for f in figures) + "</div>"


def _cell(value):
    numeric = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    opening = '<td class="num">' if numeric else "<td>"
    return f"{opening}{html.escape(format_value(value))}</td>"


def table_html(frame, caption=None, row_titles=None, row_classes=None, serum=None, table_id=None):
    """A sortable HTML table of ``frame`` with readable headers.

    Parameters
    ----------
    frame : pandas.DataFrame
    caption : str, optional
    row_titles, row_classes : sequence of str, optional
        Per row: hover text and CSS class (e.g. ``outlier``).
    serum : str, optional
        Serum of a per-serum table (see :func:`~antibodies.report.columns.readable_column`).
    table_id : str, optional
    """
    shown = readable_columns(frame, serum)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    rows = []
    for index, record in enumerate(shown.itertuples(index=False)):
        title = f' title="{html.escape(row_titles[index], quote=True)}"' if row_titles and row_titles[index] else ""
        css = f' class="{row_classes[index]}"' if row_classes and row_classes[index] else ""
        cells = "".join(_cell(v) for v in record)
        rows.append(f"<tr{css}{title}>{cells}</tr>")
    ident = f' id="{table_id}"' if table_id else ""
    cap = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return (f'<div class="scroll"><table class="sortable"{ident}>{cap}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')


def warnings_html(lines):
    """One highlighted paragraph per warning line (empty string for none).

    Examples
    --------
    >>> warnings_html(["no infected cell <here>"])
    '<p class="warning"><strong>Warning:</strong> no infected cell &lt;here&gt;</p>'
    """
    return "".join(f'<p class="warning"><strong>Warning:</strong> {html.escape(line)}</p>' for line in lines)


def key_value_html(mapping):
    """A definition list of ``{label: text}``."""
    items = "".join(f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(str(v))}</dd>" for k, v in mapping.items())
    return f'<dl class="summary">{items}</dl>'


def well_title(record, serum, cutoff):
    """Hover text of a well: score, call, z-score, cells and outlier reasons.

    Parameters
    ----------
    record : Mapping
        One row of the default well table.
    serum : str
    cutoff : float or None
    """
    label = serum_label(serum)
    score = record.get(f"{serum}_score")
    lines = [f"{record['well_name']}: {label} score {format_value(score) or 'n/a'}"]
    call = well_call(record, serum, cutoff)
    if call is not None:
        lines[0] += f" ({call}, cut-off {cutoff:g})"
    low, high = record.get(f"{serum}_score_ci_low"), record.get(f"{serum}_score_ci_high")
    if low is not None and not pd.isna(low):
        lines.append(f"interval {format_value(low)}-{format_value(high)}")
    lines.append(f"robust z-score {format_value(record.get(f'{serum}_robust_z_score')) or 'n/a'}")
    lines.append(f"cells {record.get('n_cells')}, infected {record.get('n_infected')}, "
                 f"fraction infected {format_value(record.get('fraction_infected'))}")
    reasons = [r for r in (record.get("outlier_type"), record.get(f"{serum}_outlier_type")) if isinstance(r, str) and r]
    if reasons:
        lines.append("OUTLIER: " + "; ".join(dict.fromkeys(reasons)))
    return "\n".join(lines)


def well_call(record, serum, cutoff):
    """``positive``, ``negative`` or ``inconclusive`` (interval holds the cut-off); None without score or cut-off."""
    score = record.get(f"{serum}_score")
    if cutoff is None or score is None or pd.isna(score):
        return None
    call = record.get(f"{serum}_is_positive", score > cutoff)
    if call is None or pd.isna(call):
        return "inconclusive"
    return "positive" if call else "negative"


def _well_class(record, serum, cutoff):
    if record["is_outlier"] or record[f"{serum}_is_outlier"]:
        return "outlier"
    return well_call(record, serum, cutoff) or "missing"


def plate_grid_html(wells, serum, cutoff=None):
    """The plate as an HTML table: one cell per well with its score, call colour and hover text.

    Outlier wells are crossed out and their reason is in the hover text
    (``title`` attribute); wells without images are blank.
    """
    records = {r["well_name"]: r for r in wells.to_dict("records")}
    n_rows, n_cols = plate_shape(list(records) or ["A01"])
    head = "<tr><th></th>" + "".join(f"<th>{c}</th>" for c in range(1, n_cols + 1)) + "</tr>"
    body = []
    for row in ROWS[:n_rows]:
        cells = []
        for col in range(1, n_cols + 1):
            well = f"{row}{col:02d}"
            record = records.get(well)
            if record is None:
                cells.append(f'<td class="empty" title="{well}: no images"></td>')
                continue
            title = html.escape(well_title(record, serum, cutoff), quote=True)
            text = format_value(record[f"{serum}_score"]) or "&ndash;"
            cells.append(f'<td class="{_well_class(record, serum, cutoff)}" title="{title}" '
                         f'data-well="{well}">{text}</td>')
        body.append(f"<tr><th>{row}</th>{''.join(cells)}</tr>")
    legend = ('<p class="legend"><span style="background:#f4a582">positive</span>'
              '<span style="background:#92c5de">negative</span>'
              '<span style="background:#f7f7c8">inconclusive (interval holds the cut-off)</span><span style="background:#ddd">'
              '&#x2715; outlier (hover for the reason)</span><span style="background:#f0f0f0">no score</span></p>')
    caption = f"{serum_label(serum)} score per well" + (f", cut-off {cutoff:g}" if cutoff is not None else "")
    return (f'<table class="plate" data-serum="{html.escape(serum)}"><caption>{html.escape(caption)}</caption>'
            f"<thead>{head}</thead><tbody>{''.join(body)}</tbody></table>{legend}")


def page_html(title, sections, subtitle=""):
    """The whole page: header, navigation, sections; CSS and script inline."""
    nav = "".join(f'<a href="#{s.anchor}">{html.escape(s.title)}</a>' for s in sections)
    parts = "".join(f'<section id="{s.anchor}"><h2>{html.escape(s.title)}</h2>{s.body}</section>' for s in sections)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        '<link rel="icon" href="data:,">'
        f"<style>{STYLE}</style><script>{SCRIPT}</script></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p><nav>{nav}</nav></header>"
        f"{parts}</body></html>\n"
    )
