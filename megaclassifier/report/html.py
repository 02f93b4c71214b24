"""The report's HTML: static pages with inline CSS, SVG histograms and one small viewer script.

Everything opens from disk (``file://``) with no server and no network::

    index.html                       species table, histograms, failed images
    species/001-deer/page-0001.html  thumbnails, flagged ones first, PAGE_SIZE a page
    view.html?img=previews/..&box=x,y,w,h&label=..   the image with its box drawn
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from html import escape
from urllib.parse import urlencode

from megaclassifier.formats.results_table import DetectionRow
from megaclassifier.report.stats import SpeciesStats
from megaclassifier.report.thumbs import preview_name, thumb_name

#: Thumbnails per species page.
PAGE_SIZE = 200

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:170px;font-size:12px;border:2px solid #ccc;padding:3px;overflow-wrap:anywhere}
figure.review{border-color:#d33;background:#fee}figure img{display:block;max-width:160px;max-height:160px}
.flag{color:#b00;font-weight:bold}.pager a,.pager span{margin-right:.5em}
.hist rect{fill:#4a7}.note{color:#666}
"""

VIEW_HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Detection</title>
<style>body{font-family:system-ui,sans-serif;margin:1.5em}#frame{position:relative;display:inline-block}
#photo{display:block;max-width:95vw;max-height:85vh}#box{position:absolute;border:3px solid #f20;box-sizing:border-box}
</style></head><body><p id="label"></p><div id="frame"><img id="photo" alt="image"><div id="box"></div></div>
<script>
var q = new URLSearchParams(location.search);
var img = q.get("img") || "";
if (/^previews\\/[0-9a-f]{2}\\/[0-9a-f]{16}\\.jpg$/.test(img)) { document.getElementById("photo").src = img; }
var b = (q.get("box") || "").split(",").map(Number);
if (b.length === 4 && b.every(isFinite)) {
  var s = document.getElementById("box").style;
  s.left = 100 * b[0] + "%"; s.top = 100 * b[1] + "%"; s.width = 100 * b[2] + "%"; s.height = 100 * b[3] + "%";
}
document.getElementById("label").textContent = q.get("label") || "";
</script></body></html>
"""


def page(title: str, body: str) -> str:
    """A whole HTML document with the report's CSS."""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{CSS}</style></head><body>\n{body}\n</body></html>\n"
    )


def histogram_svg(counts: Sequence[int], *, width: int = 200, height: int = 40) -> str:
    """An inline SVG bar chart of score counts over [0, 1], with a tooltip per bar."""
    peak = max(counts) or 1
    bar = width / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = height * count / peak
        low, high = i / len(counts), (i + 1) / len(counts)
        bars.append(
            f'<rect x="{i * bar:.1f}" y="{height - h:.1f}" width="{bar - 1:.1f}" height="{h:.1f}">'
            f"<title>{low:.1f}-{high:.1f}: {count}</title></rect>"
        )
    return (
        f'<svg class="hist" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="confidence histogram">{"".join(bars)}</svg>'
    )


def index_page(species: Sequence[SpeciesStats], links: Sequence[str], facts: dict[str, str],
               failures: dict[str, str]) -> str:  # fmt: skip
    """The index: facts, the species table (one row per species, linking its first page), failures."""
    lines = [f"<h1>{escape(facts['title'])}</h1>", "<ul id='facts'>"]
    lines += [f"<li>{escape(k)}: <b>{escape(v)}</b></li>" for k, v in facts.items() if k != "title"]
    lines += [
        "</ul><table id='species'><thead><tr><th>species</th><th>detections</th><th>images</th>"
        "<th>mean confidence</th><th>median confidence</th><th>to review</th><th>confidence 0-1</th>"
        "</tr></thead><tbody>"
    ]
    for stats, link in zip(species, links, strict=True):
        lines.append(
            f'<tr data-species="{escape(stats.name)}"><td><a href="{escape(link)}">{escape(stats.name)}</a></td>'
            f'<td class="detections">{stats.detections}</td><td class="images">{stats.images}</td>'
            f'<td class="mean">{stats.mean:.3f}</td><td class="median">{stats.median:.3f}</td>'
            f'<td class="review">{stats.flagged}</td><td>{histogram_svg(stats.histogram)}</td></tr>'
        )
    lines.append("</tbody></table>")
    lines += _failures_section(failures)
    return page(facts["title"], "\n".join(lines))


def _failures_section(failures: dict[str, str], shown: int = 500) -> list[str]:
    if not failures:
        return []
    lines = [f"<h2 id='failures'>Images that could not be read ({len(failures)})</h2><ul>"]
    lines += [f"<li>{escape(f)}: {escape(r)}</li>" for f, r in list(failures.items())[:shown]]
    if len(failures) > shown:
        lines.append(f"<li>... and {len(failures) - shown} more (see report_log.json)</li>")
    return lines + ["</ul>"]


def species_page(stats: SpeciesStats, page_no: int, pages: int, unreadable: Collection[str]) -> str:
    """One page of a species' thumbnails; images in ``unreadable`` get a note instead."""
    start = (page_no - 1) * PAGE_SIZE
    rows = stats.rows[start : start + PAGE_SIZE]
    flags = stats.flags[start : start + PAGE_SIZE]
    head = [
        '<p><a href="../../index.html">all species</a></p>',
        f"<h1>{escape(stats.name)}</h1>",
        f"<p>{stats.detections} detections in {stats.images} images; mean confidence {stats.mean:.3f}, "
        f"median {stats.median:.3f}; {stats.flagged} flagged for review (shown first).</p>",
        histogram_svg(stats.histogram, width=400, height=100),
        _pager(page_no, pages),
    ]
    figures = [_figure(row, flag, row.file in unreadable) for row, flag in zip(rows, flags, strict=True)]
    body = "\n".join(head + ['<div class="grid">', *figures, "</div>", _pager(page_no, pages)])
    return page(f"{stats.name} ({page_no}/{pages})", body)


def page_name(page_no: int) -> str:
    """The file name of a species page."""
    return f"page-{page_no:04d}.html"


def _pager(page_no: int, pages: int) -> str:
    if pages == 1:
        return ""
    parts = [
        f"<span>{n}</span>" if n == page_no else f'<a href="{page_name(n)}">{n}</a>'
        for n in range(1, pages + 1)
        if n in (1, pages) or abs(n - page_no) <= 3
    ]
    return f'<p class="pager">page {page_no} of {pages}: {" ".join(parts)}</p>'


def _figure(row: DetectionRow, flag: str | None, unreadable: bool) -> str:
    where = row.file if row.frame is None else f"{row.file} frame {row.frame}"
    label = f"{row.label} {row.score:.2f} in {where}"
    box = ",".join(f"{v:.6g}" for v in row.bbox)
    href = "../../view.html?" + urlencode({"img": preview_name(row.file, row.frame), "box": box, "label": label})
    image = (
        '<span class="flag">image unreadable</span>'
        if unreadable
        else f'<a href="{escape(href)}"><img src="../../{thumb_name(row)}" alt="{escape(row.label)}"></a>'
    )
    second = f"<br>2nd: {escape(row.second_class)} {row.second_score:.2f}" if row.second_class else ""
    conf = f"<br>detection {row.conf:.2f}" if row.conf is not None and row.top_class is not None else ""
    flag_html = f'<br><span class="flag">review: {escape(flag)}</span>' if flag else ""
    return (
        f'<figure class="{"review" if flag else "ok"}">{image}'
        f"<figcaption><b>{row.score:.3f}</b>{second}{conf}{flag_html}<br>"
        f'<span class="note">{escape(where)} #{row.index}</span></figcaption></figure>'
    )
