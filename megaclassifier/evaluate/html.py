"""``evaluation.html``: the confusion matrix with, per cell, thumbnails of the crops behind it.

A standalone page in OUT_DIR beside the CSV files; thumbnails and previews are
made by the report's code (:mod:`megaclassifier.report.thumbs`), so a report and
an evaluation written into one folder share them::

    evaluation.html                       matrix (counts link to their cell) + one section per cell
    thumbs/3f/3fa2c1d09e8b7a65.jpg        the most confident detection of each shown image
    previews/9c/9c01d2e3f4a5b6c7.jpg      images without a detection (predicted empty)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING

from megaclassifier.formats.atomic import atomic_output
from megaclassifier.formats.results_table import DetectionRow
from megaclassifier.report.html import page
from megaclassifier.report.thumbs import plan_jobs, preview_name, run_jobs, thumb_name

if TYPE_CHECKING:
    from megaclassifier.evaluate.results import Entity, EvaluationSummary
    from megaclassifier.evaluate.scan import Scan

logger = logging.getLogger(__name__)

_STYLE = (
    "<style>.cm td{text-align:center;min-width:1.6em}.cm td.hit{background:#cfe8d5}.cm td.miss{background:#f6d5d5}"
    ".cm th.col{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal}</style>"
)


def write_evaluation_page(
    out_dir: Path,
    summary: EvaluationSummary,
    entities: Sequence[Entity],
    scan: Scan,
    *,
    images_dir: Path,
    per_cell: int,
    num_workers: int,
) -> Path:
    """Write ``evaluation.html`` for the first variant's image-level matrix and its thumbnails."""
    scores = summary.variants[0].levels["image"]
    cells: dict[tuple[str, str], list[Entity]] = {}
    for e in entities:
        shown = cells.setdefault((e.label, e.predicted[0]), [])
        if len(shown) < per_cell:
            shown.append(e)
    rows = {id(e): _row(e, scan) for shown in cells.values() for e in shown}
    jobs, _ = plan_jobs([r for r in rows.values() if r is not None], out_dir)
    jobs += [job for job in _preview_jobs(cells, rows, out_dir)]
    failed = sum(1 for _, _, reason in run_jobs(jobs, out_dir, images_dir, num_workers=num_workers) if reason)
    if failed:
        logger.warning("%d images could not be read for thumbnails", failed)
    body = [
        f"<h1>Evaluation of {escape(summary.variants[0].results.name)}</h1>",
        f"<p>{scores.total} labelled images, accuracy {scores.accuracy:.3f}, macro F1 {scores.macro('f1'):.3f}. "
        'Rows: the label; columns: the prediction. <a href="confusion_matrix.png">Heatmap</a>, '
        '<a href="per_class.csv">per-class metrics</a>, <a href="comparison.csv">comparison</a>.</p>',
        _matrix_table(scores.classes, scores.matrix),
    ]
    for (label, predicted), shown in sorted(cells.items()):
        body.append(
            f'<h2 id="{_anchor(label, predicted)}">{escape(label)} → {escape(predicted)}</h2><div class="grid">'
        )
        body.extend(_figure(e, rows[id(e)]) for e in shown)
        body.append("</div>")
    path = out_dir / "evaluation.html"
    with atomic_output(path) as f:
        f.write(page("Evaluation", _STYLE + "\n".join(body)))
    return path


def _row(entity: Entity, scan: Scan) -> DetectionRow | None:
    """The detection to show: the labelled crop, else the image's most confident detection."""
    dets = scan.images[entity.key][1] if entity.key in scan.images else []
    if entity.detection is not None:
        dets = [d for d in dets if d.index == entity.detection]
    if not dets:
        return None
    best = max(dets, key=lambda d: d.conf)
    return DetectionRow(entity.file, best.index, "animal", best.conf, best.bbox, entity.predicted[0], entity.scores[0])


def _preview_jobs(cells: dict, rows: dict, out_dir: Path) -> list:
    from megaclassifier.report.thumbs import ImageJob

    files = {e.file for shown in cells.values() for e in shown if rows[id(e)] is None}
    return [ImageJob(f, preview_name(f), ()) for f in sorted(files) if not (out_dir / preview_name(f)).is_file()]


def _anchor(label: str, predicted: str) -> str:
    return "cell-" + "".join(c if c.isalnum() else "_" for c in f"{label}--{predicted}")


def _matrix_table(classes: Sequence[str], matrix: object) -> str:
    head = "".join(f'<th class="col">{escape(c)}</th>' for c in classes)
    lines = [f'<table class="cm"><tr><th>label \\ predicted</th>{head}</tr>']
    for i, label in enumerate(classes):
        cells = []
        for j, predicted in enumerate(classes):
            n = int(matrix[i][j])  # type: ignore[index]
            kind = "hit" if i == j else "miss"
            cells.append(
                f'<td class="{kind}"><a href="#{_anchor(label, predicted)}">{n}</a></td>' if n else "<td></td>"
            )
        lines.append(f"<tr><th>{escape(label)}</th>{''.join(cells)}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _figure(entity: Entity, row: DetectionRow | None) -> str:
    src = thumb_name(row) if row is not None else preview_name(entity.file)
    caption = f"{escape(entity.file)}" + (f" #{entity.detection}" if entity.detection is not None else "")
    return (
        f'<figure><img src="{escape(src)}" alt="" loading="lazy" style="max-width:160px;max-height:160px">'
        f"<figcaption>{caption}<br>{escape(entity.predicted[0])} {entity.scores[0]:.2f}</figcaption></figure>"
    )
