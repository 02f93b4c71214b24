"""The taxonomy CSV and the taxonomy tree built from it.

The taxonomy CSV maps each (dataset, dataset label) pair to its taxon and the
taxon's ancestry::

    dataset_name,query,taxonomy_level,scientific_name,taxonomy_string
    ds1,cow,species,bos taurus,"[(6, 'species', 'bos taurus', ['cattle']), (7, 'genus', 'bos', [])]"
    ds1,empty,,,

``taxonomy_string`` is a Python-literal list of 4-tuples ``(taxon_id, level,
name, common_names)`` from the most specific taxon up to the root; it is read
as a literal (never evaluated as code). Other columns (``source``, ...) are
ignored. Rows with an empty ``taxonomy_string`` are skipped. Everything is
lower-cased. The first tuple must be the row's ``taxonomy_level`` and
``scientific_name``.

Taxa are keyed by ``(level, name)``. Each tuple is the parent of the one before
it; the pair ``(dataset, query)`` belongs to the first. The result is a DAG: a
taxon reached through two ancestries can have two parents. It becomes a tree by
keeping, for such a taxon, the parent that lies below the others (the others
are its ancestors anyway), except for the reference's fixed choices in
:data:`PARENT_EXCEPTIONS`; any other conflict is an error.
"""

from __future__ import annotations

import ast
import csv
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from megaclassifier.errors import InputFileError, LabelSpecError
from megaclassifier.formats.reading import open_text

logger = logging.getLogger(__name__)

TaxonKey = tuple[str, str]
"""A taxon: ``(level, name)``, lower-cased."""

REQUIRED_COLUMNS = ("dataset_name", "query", "taxonomy_level", "scientific_name", "taxonomy_string")

PARENT_EXCEPTIONS: dict[str, TaxonKey] = {
    "cathartidae": ("order", "accipitriformes"),
    "soricidae": ("order", "eulipotyphla"),
    "nyctanassa violacea": ("genus", "nyctanassa"),
    "trochilidae": ("order", "caprimulgiformes"),
}
"""Taxon name -> the parent kept when the taxonomy gives it two unrelated parents."""


def format_taxon(key: TaxonKey) -> str:
    """``('family', 'cervidae')`` -> ``"(family, cervidae)"``."""
    return f"({key[0]}, {key[1]})"


def format_taxa(keys: Iterable[TaxonKey], *, limit: int = 5) -> str:
    """A short sorted list of taxa for an error message."""
    ordered = sorted(keys)
    text = ", ".join(format_taxon(k) for k in ordered[:limit])
    if len(ordered) > limit:
        text += f" and {len(ordered) - limit} more"
    return text


@dataclass(frozen=True)
class TaxonomyRow:
    """One usable row of the taxonomy CSV.

    Attributes:
        line: its line number (for messages).
        dataset: ``dataset_name``, lower-cased.
        label: ``query``, lower-cased.
        ancestry: ``(level, name)`` from the row's taxon up to the root, lower-cased.
    """

    line: int
    dataset: str
    label: str
    ancestry: tuple[TaxonKey, ...]


@dataclass
class Taxonomy:
    """A taxonomy tree and the dataset labels attached to its taxa.

    Attributes:
        parent: each taxon's parent in the tree (None for a root).
        children: each taxon's children in the tree.
        dataset_labels: ``(dataset, label)`` -> its taxon, lower-cased.
        source: where it was read from (for messages).
    """

    parent: dict[TaxonKey, TaxonKey | None]
    children: dict[TaxonKey, list[TaxonKey]] = field(default_factory=dict)
    dataset_labels: dict[tuple[str, str], TaxonKey] = field(default_factory=dict)
    source: str = "<taxonomy>"

    def __contains__(self, key: object) -> bool:
        return key in self.parent

    def __len__(self) -> int:
        return len(self.parent)

    def descendants(self, key: TaxonKey) -> set[TaxonKey]:
        """The taxon and every taxon below it in the tree."""
        found = {key}
        stack = [key]
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child not in found:
                    found.add(child)
                    stack.append(child)
        return found


def parse_taxonomy_string(text: str) -> list[tuple[int, str, str, list[str]]]:
    """Parse a ``taxonomy_string`` cell without evaluating code.

    Args:
        text: e.g. ``"[(7, 'genus', 'bos', []), (10, 'class', 'mammalia', ['mammals'])]"``.

    Returns:
        The 4-tuples ``(taxon_id, level, name, common_names)``, most specific first.

    Raises:
        ValueError: not a literal list of ``(int, str, str, list)`` tuples (the message says which).
    """
    try:
        value = ast.literal_eval(text.strip())
    except Exception:  # literal_eval raises many types (SyntaxError, ValueError, RecursionError, ...)
        raise ValueError("is not a Python literal list of (id, level, name, common_names) tuples") from None
    if not isinstance(value, list):
        raise ValueError(f"must be a list of (id, level, name, common_names) tuples, got a {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if not (
            isinstance(item, (tuple, list))
            and len(item) == 4
            and isinstance(item[0], int)
            and not isinstance(item[0], bool)
            and isinstance(item[1], str)
            and isinstance(item[2], str)
            and isinstance(item[3], (list, tuple))
        ):
            raise ValueError(
                f"entry {i} is {item!r}; expected (taxon_id: int, level: str, name: str, common_names: list)"
            )
        out.append((item[0], item[1], item[2], list(item[3])))
    return out


def load_taxonomy_csv(path: str | Path) -> Taxonomy:
    """Read a taxonomy CSV and build its tree.

    Raises:
        InputFileError: unreadable file, missing columns, or a malformed row (the message names the line).
        LabelSpecError: a taxon with parents the tree conversion cannot choose between, or a cycle.
    """
    return build_taxonomy(read_taxonomy_rows(path), source=str(path))


def read_taxonomy_rows(path: str | Path) -> list[TaxonomyRow]:
    """Read the usable rows of a taxonomy CSV (those with a ``taxonomy_string``).

    Raises:
        InputFileError: unreadable file, missing columns, or a malformed row.
    """
    try:
        with open_text(path) as f:
            reader = csv.reader(f, strict=True)
            try:
                rows = _read_rows(reader, path)
            except csv.Error as e:
                raise InputFileError(path, f"line {reader.line_num}: not valid CSV ({e})") from None
    except FileNotFoundError:
        raise InputFileError(path, "no such file") from None
    except (OSError, EOFError, UnicodeDecodeError) as e:
        raise InputFileError(path, f"cannot read ({e})") from None
    logger.debug("%s: %d rows with a taxonomy", path, len(rows))
    return rows


def _read_header(reader: Any, path: str | Path) -> list[str]:
    header = next(reader, None)
    if not header:
        raise InputFileError(path, f"empty file; expected the header {','.join(REQUIRED_COLUMNS)}")
    header = [h.lstrip("\ufeff").strip() for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputFileError(
            path,
            f"missing column(s) {', '.join(missing)}; a taxonomy CSV has the columns {','.join(REQUIRED_COLUMNS)}",
        )
    return header


def _read_rows(reader: Any, path: str | Path) -> list[TaxonomyRow]:
    header = _read_header(reader, path)
    positions = [header.index(c) for c in REQUIRED_COLUMNS]
    rows: list[TaxonomyRow] = []
    while True:
        line = reader.line_num + 1
        fields = next(reader, None)
        if fields is None:
            return rows
        if not any(f.strip() for f in fields):
            continue
        if len(fields) > len(header):
            raise InputFileError(path, f"line {line}: {len(fields)} fields, the header has {len(header)}")
        row = _parse_row([fields[p] if p < len(fields) else "" for p in positions], path=path, line=line)
        if row is not None:
            rows.append(row)


def _parse_row(values: list[str], *, path: str | Path, line: int) -> TaxonomyRow | None:
    dataset, query, level, name, taxonomy_string = values
    if not taxonomy_string.strip():
        return None
    try:
        tuples = parse_taxonomy_string(taxonomy_string)
    except ValueError as e:
        raise InputFileError(path, f"line {line}: taxonomy_string {e}") from None
    if not tuples:
        return None
    ancestry = tuple((t[1].strip().lower(), t[2].strip().lower()) for t in tuples)
    own = (level.strip().lower(), name.strip().lower())
    if ancestry[0] != own:
        raise InputFileError(
            path,
            f"line {line}: taxonomy_level and scientific_name {format_taxon(own)} differ from the first "
            f"taxonomy_string entry {format_taxon(ancestry[0])}",
        )
    return TaxonomyRow(line=line, dataset=dataset.strip().lower(), label=query.strip().lower(), ancestry=ancestry)


def build_taxonomy(rows: Iterable[TaxonomyRow], *, source: str = "<taxonomy>") -> Taxonomy:
    """Build the taxonomy DAG from rows and turn it into a tree.

    Args:
        rows: the parsed rows, in file order.
        source: the name used in messages.

    Raises:
        LabelSpecError: a taxon with parents the conversion cannot choose between, or a cycle.
    """
    # parents in the DAG, each with the line that first gave it (dicts keep insertion order)
    dag: dict[TaxonKey, dict[TaxonKey, int]] = {}
    dataset_labels: dict[tuple[str, str], TaxonKey] = {}
    for row in rows:
        for i, key in enumerate(row.ancestry):
            parents = dag.setdefault(key, {})
            if i + 1 < len(row.ancestry):
                parent = row.ancestry[i + 1]
                if parent == key:
                    raise LabelSpecError(f"{source}: line {row.line}: taxon {format_taxon(key)} is its own parent")
                parents.setdefault(parent, row.line)
        pair = (row.dataset, row.label)
        previous = dataset_labels.get(pair)
        if previous is not None and previous != row.ancestry[0]:
            logger.warning(
                "%s: line %d: dataset label (%s, %s) was already %s; now %s",
                source, row.line, row.dataset, row.label, format_taxon(previous), format_taxon(row.ancestry[0]),
            )  # fmt: skip
        dataset_labels[pair] = row.ancestry[0]
        for key in row.ancestry:
            dag.setdefault(key, {})

    tree_parent = {key: _choose_parent(key, parents, dag, source) for key, parents in dag.items()}
    _check_acyclic(tree_parent, source)
    children: dict[TaxonKey, list[TaxonKey]] = {key: [] for key in tree_parent}
    for key, tree_parent_key in tree_parent.items():
        if tree_parent_key is not None:
            children[tree_parent_key].append(key)
    logger.debug("%s: %d taxa, %d dataset labels", source, len(tree_parent), len(dataset_labels))
    return Taxonomy(parent=tree_parent, children=children, dataset_labels=dataset_labels, source=source)


def _choose_parent(
    key: TaxonKey, parents: dict[TaxonKey, int], dag: dict[TaxonKey, dict[TaxonKey, int]], source: str
) -> TaxonKey | None:
    """The one parent a taxon keeps in the tree."""
    if len(parents) <= 1:
        return next(iter(parents), None)
    fixed = PARENT_EXCEPTIONS.get(key[1])
    if fixed in parents:
        return fixed
    # keep the parent that has all the others among its ancestors
    lowest = []
    for candidate in parents:
        above = _ancestors(candidate, dag)
        if all(other == candidate or other in above for other in parents):
            lowest.append(candidate)
    if len(lowest) == 1:
        return lowest[0]
    listed = " and ".join(f"{format_taxon(p)} (line {line})" for p, line in parents.items())
    raise LabelSpecError(
        f"{source}: taxon {format_taxon(key)} has parents {listed}, and none of them lies below the others; "
        "make its taxonomy_string rows agree on one ancestry"
    )


def _ancestors(key: TaxonKey, dag: dict[TaxonKey, dict[TaxonKey, int]]) -> set[TaxonKey]:
    """Every taxon above ``key`` in the DAG."""
    found: set[TaxonKey] = set()
    stack = list(dag.get(key, ()))
    while stack:
        node = stack.pop()
        if node not in found:
            found.add(node)
            stack.extend(dag.get(node, ()))
    return found


def _check_acyclic(parent: dict[TaxonKey, TaxonKey | None], source: str) -> None:
    """Raise if following parents from some taxon comes back to it."""
    done: set[TaxonKey] = set()
    for start in parent:
        path: list[TaxonKey] = []
        on_path: set[TaxonKey] = set()
        node: TaxonKey | None = start
        while node is not None and node not in done:
            if node in on_path:
                cycle = path[path.index(node) :] + [node]
                raise LabelSpecError(
                    f"{source}: the taxonomy has a cycle: {' -> '.join(format_taxon(k) for k in cycle)}"
                )
            path.append(node)
            on_path.add(node)
            node = parent[node]
        done.update(path)
