"""The report's HTML: static pages with inline CSS and SVG histograms; no script, no server.

Everything opens from disk (``file://``) with no network, and every page is
small however large the results (lists are paged)::

    index.html                       facts, species table, histograms, first deployments, failed images
    species/001-deer/page-0001.html  thumbnails, flagged ones first, PAGE_SIZE a page
    deployments/page-0001.html       per folder (camera, site): images, blank images, species counts
    images/page-0001.html            per image: its species list, LIST_PAGE_SIZE a page
    images/3f/3fa2c1d09e8b7a65.html  one image with every box drawn and labelled (#d3: box 3 marked)
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from html import escape

from megaclassifier.formats.naming import NAME_ERRORS, display_name
from megaclassifier.formats.results_table import DetectionRow
from megaclassifier.report.stats import DeploymentStats, ImageSummary, SpeciesStats
from megaclassifier.report.thumbs import preview_name, thumb_name

#: Thumbnails per species page.
PAGE_SIZE = 200
#: Rows per page of the image and deployment lists.
LIST_PAGE_SIZE = 500
#: Deployments shown on the index (all of them on the deployment pages).
DEPLOYMENTS_ON_INDEX = 50

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}td,th{padding:.3em .7em;border-bottom:1px solid #ddd;text-align:right}
td:first-child,th:first-child,td.species,td.file{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;width:170px;font-size:12px;border:2px solid #ccc;padding:3px;overflow-wrap:anywhere}
figure.review{border-color:#d33;background:#fee}figure img{display:block;max-width:160px;max-height:160px}
.flag{color:#b00;font-weight:bold}.pager a,.pager span{margin-right:.5em}
.hist rect{fill:#4a7}.note{color:#666}
#frame{position:relative;display:inline-block;overflow:hidden;line-height:0}
#photo{display:block;max-width:95vw;max-height:85vh}
.box{position:absolute;border:2px solid #f20;box-sizing:border-box}
.box span{position:absolute;left:-2px;bottom:100%;background:#f20;color:#fff;font-size:11px;line-height:1.3;
padding:0 3px;white-space:nowrap}
.box.top span{bottom:auto;top:0}
.box:target{border:3px solid #ff0;z-index:2}.box:target span{background:#ff0;color:#000}
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


def index_page(species: Sequence[SpeciesStats], links: Sequence[str], facts: dict[str, str], failures: dict[str, str],
               deployments: Sequence[DeploymentStats], first_images: Sequence[int]) -> str:  # fmt: skip
    """The index: facts, the species table (one row per species, linking its first page), the first
    deployments, failures. ``first_images[i]``: position of deployment i's first image in the image list."""
    lines = [f"<h1>{escape(facts['title'])}</h1>", "<ul id='facts'>"]
    lines += [f"<li>{escape(k)}: <b>{escape(v)}</b></li>" for k, v in facts.items() if k != "title"]
    lines += [
        "</ul><p><a href='images/page-0001.html'>every image, with its species</a> · "
        f"<a href='deployments/page-0001.html'>every deployment ({len(deployments)})</a></p>",
        "<table id='species'><thead><tr><th>species</th><th>detections</th><th>images</th>"
        "<th>mean confidence</th><th>median confidence</th><th>to review</th><th>confidence 0-1</th>"
        "</tr></thead><tbody>",
    ]
    for stats, link in zip(species, links, strict=True):
        lines.append(
            f'<tr data-species="{escape(stats.name)}"><td><a href="{escape(link)}">{escape(stats.name)}</a></td>'
            f'<td class="detections">{stats.detections}</td><td class="images">{stats.images}</td>'
            f'<td class="mean">{stats.mean:.3f}</td><td class="median">{stats.median:.3f}</td>'
            f'<td class="review">{stats.flagged}</td><td>{histogram_svg(stats.histogram)}</td></tr>'
        )
    lines.append("</tbody></table>")
    shown = deployments[:DEPLOYMENTS_ON_INDEX]
    more = f" (the first {len(shown)}; <a href='deployments/page-0001.html'>all {len(deployments)}</a>)"
    lines.append(f"<h2>Deployments{more if len(deployments) > len(shown) else ''}</h2>")
    lines.append(deployments_table(shown, first_images[: len(shown)], root=""))
    lines += _failures_section(failures)
    return page(facts["title"], "\n".join(lines))


def deployments_table(deployments: Sequence[DeploymentStats], first_images: Sequence[int], *, root: str) -> str:
    """Rows of folders: images, blank images, detections, species counts; each links to its images."""
    lines = [
        "<table class='deployments'><thead><tr><th>deployment (folder)</th><th>images</th><th>blank images</th>"
        "<th>detections</th><th>species (detections)</th></tr></thead><tbody>"
    ]
    for stats, first in zip(deployments, first_images, strict=True):
        href = f"{root}images/{page_name(first // LIST_PAGE_SIZE + 1)}#i{first}"
        lines.append(
            f'<tr data-folder="{_shown(stats.folder)}"><td><a href="{escape(href)}">{_shown(stats.folder)}</a></td>'
            f'<td class="images">{stats.images}</td><td class="blank">{stats.blank}</td>'
            f'<td class="detections">{stats.detections}</td>'
            f'<td class="species">{_species_list(stats.species)}</td></tr>'
        )
    return "\n".join(lines + ["</tbody></table>"])


def deployments_page(deployments: Sequence[DeploymentStats], first_images: Sequence[int], page_no: int,
                     pages: int) -> str:  # fmt: skip
    """One page of the deployments list."""
    start = (page_no - 1) * LIST_PAGE_SIZE
    body = [
        '<p><a href="../index.html">report</a></p>',
        f"<h1>Deployments ({len(deployments)})</h1>",
        "<p>A deployment is a folder of images (a camera or site). Blank images have no detection at the "
        "report's threshold.</p>",
        _pager(page_no, pages),
        deployments_table(
            deployments[start : start + LIST_PAGE_SIZE], first_images[start : start + LIST_PAGE_SIZE], root="../"
        ),  # fmt: skip
        _pager(page_no, pages),
    ]
    return page(f"Deployments ({page_no}/{pages})", "\n".join(body))


def _species_list(species: dict[str, int]) -> str:
    return ", ".join(f"{escape(name)} {count}" for name, count in species.items()) or "blank"


def image_page_name(file: str) -> str:
    """The image page's path relative to the report folder."""
    key = hashlib.sha1(file.encode("utf-8", NAME_ERRORS)).hexdigest()[:16]
    return f"images/{key[:2]}/{key}.html"


def images_page(images: Sequence[ImageSummary], page_no: int, pages: int, unreadable: Collection[str]) -> str:
    """One page of the image list: each image's folder, detections and species (blank ones too)."""
    start = (page_no - 1) * LIST_PAGE_SIZE
    rows = []
    for n, image in enumerate(images[start : start + LIST_PAGE_SIZE], start):
        name = _shown(image.file)
        link = name if image.blank else f'<a href="../{image_page_name(image.file)}">{name}</a>'
        note = ' <span class="flag">image unreadable</span>' if image.file in unreadable else ""
        rows.append(
            f'<tr id="i{n}" data-file="{name}"><td class="file">{link}{note}</td><td>{_shown(image.folder)}</td>'
            f'<td class="detections">{len(image.rows)}</td><td class="species">{_species_list(image.species)}</td></tr>'
        )
    body = [
        '<p><a href="../index.html">report</a></p>',
        f"<h1>Images ({len(images)})</h1>",
        _pager(page_no, pages),
        "<table id='images'><thead><tr><th>image</th><th>deployment</th><th>detections</th>"
        "<th>species (detections)</th></tr></thead><tbody>",
        *rows,
        "</tbody></table>",
        _pager(page_no, pages),
    ]
    return page(f"Images ({page_no}/{pages})", "\n".join(body))


def image_page(image: ImageSummary, list_position: int, failure: str | None) -> str:
    """One image with every box drawn and labelled, its species list and its detections table."""
    list_href = f"../{page_name(list_position // LIST_PAGE_SIZE + 1)}#i{list_position}"
    boxes = [_box(row) for row in image.rows]
    photo = (
        f'<p class="flag">image unreadable: {_shown(failure)}</p>'
        if failure is not None
        else f'<div id="frame"><img id="photo" src="../../{preview_name(image.file)}" alt="{_shown(image.file)}">'
        + "".join(boxes) + "</div>"
    )  # fmt: skip
    table = [
        "<table id='detections'><thead><tr><th>#</th><th>label</th><th>score</th><th>detection</th>"
        "<th>second</th></tr></thead><tbody>"
    ]
    for row in image.rows:
        second = f"{escape(row.second_class)} {row.second_score:.2f}" if row.second_class else ""
        conf = f"{row.conf:.3f}" if row.conf is not None else ""
        table.append(
            f'<tr><td><a href="#d{row.index}">{row.index}</a></td><td>{escape(row.label)}</td>'
            f"<td>{row.score:.3f}</td><td>{escape(row.category)} {conf}</td><td>{second}</td></tr>"
        )
    body = [
        f'<p><a href="../../index.html">report</a> · <a href="{list_href}">image list</a></p>',
        f"<h1>{_shown(image.file)}</h1>",
        f"<p>deployment <b>{_shown(image.folder)}</b>; {len(image.rows)} detections: "
        f'<span id="species-list">{_species_list(image.species)}</span></p>',
        photo,
        *table,
        "</tbody></table>",
    ]
    return page(display_name(image.file), "\n".join(body))


def _box(row: DetectionRow) -> str:
    x, y, w, h = row.bbox
    label = f"{row.label} {row.score:.2f} #{row.index}"
    style = f"left:{100 * x:.3f}%;top:{100 * y:.3f}%;width:{100 * w:.3f}%;height:{100 * h:.3f}%"
    top = " top" if y < 0.04 else ""  # no room above the box: the label goes inside
    return (
        f'<div class="box{top}" id="d{row.index}" style="{style}" data-label="{escape(label)}">'
        f"<span>{escape(label)}</span></div>"
    )


def _failures_section(failures: dict[str, str], shown: int = 500) -> list[str]:
    if not failures:
        return []
    lines = [f"<h2 id='failures'>Images that could not be read ({len(failures)})</h2><ul>"]
    lines += [f"<li>{_shown(f)}: {_shown(r)}</li>" for f, r in list(failures.items())[:shown]]
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
    name = display_name(row.file)  # a name that is not UTF-8 shows its bytes as \xff
    where = name if row.frame is None else f"{name} frame {row.frame}"
    href = f"../../{image_page_name(row.file)}#d{row.index}"
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


def _shown(name: str) -> str:
    """A file or folder name as HTML text: escaped, a name that is not UTF-8 with its bytes as ``\\xff``."""
    return escape(display_name(name))
