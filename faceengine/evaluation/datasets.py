"""The labelled data the protocols read: CSV tables (pairs, identities, group labels), natural order, and the
template of each image's primary face."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faceengine.engine import FaceEngine
from faceengine.errors import ImageRejected
from faceengine.imageio import ImageLimits, decode_image_file

PAIR_COLUMNS = ("fold", "left", "right", "same")


def natural_key(value: str) -> tuple[tuple[int, int | str], ...]:
    """Digit runs compare as numbers, the rest as lower-case text."""
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in re.split(r"(\d+)", value) if part)


def read_table(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """A CSV's column names and rows (a leading byte-order mark, as spreadsheets write, is dropped)."""
    with Path(path).open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def read_pairs(pairs_csv: Path) -> list[dict[str, str]]:
    """Verification pairs: `fold,left,right,same`, images relative to the images folder."""
    columns, rows = read_table(pairs_csv)
    missing = set(PAIR_COLUMNS) - set(columns)
    if missing:
        raise ValueError(f"{pairs_csv} lacks the column(s) {sorted(missing)}; expected {','.join(PAIR_COLUMNS)}.")
    return rows


@dataclass
class IdentityRow:
    file: str
    identity: str
    groups: dict[str, str]  # the whole CSV row, so that any column can group the searches


def read_identities(identities_csv: Path) -> list[IdentityRow]:
    """Identification rows: `file,identity[,group columns]`; rows lacking a file or an identity are skipped."""
    columns, rows = read_table(identities_csv)
    if not {"file", "identity"} <= set(columns):
        raise ValueError(f"{identities_csv}: needs 'file' and 'identity' columns")
    return [
        IdentityRow(file=row["file"], identity=row["identity"], groups=dict(row))
        for row in rows
        if row.get("file") and row.get("identity")
    ]


def read_groups(spec: str, images_dir: Path) -> tuple[dict[str, str], str]:
    """`CSV:COLUMN` → {key: group}. The CSV's first column is the key: an image path or an identity folder."""
    if ":" not in spec:
        raise ValueError(f"--group-by {spec!r} must look like CSV:COLUMN, e.g. lfw/sex.csv:sex.")
    path_text, column = spec.rsplit(":", 1)
    path = Path(path_text)
    candidates = [path] + [base / path for base in (images_dir, *images_dir.parents[:3])]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        raise ValueError(f"Group file {path_text} not found (looked in the working folder and above {images_dir}).")
    columns, rows = read_table(found)
    if column not in columns:
        raise ValueError(f"{found} has no column {column!r}; it has {columns}.")
    key = columns[0]
    return {row[key]: (row[column] or "unknown") for row in rows}, column


def group_of(image: str, groups: dict[str, str]) -> str:
    """An image's group, looked up by its path, its identity folder, then its file stem."""
    for key in (image, image.split("/")[0], Path(image).stem):
        if key in groups:
            return groups[key]
    return "unknown"


def primary_template(
    engine: FaceEngine, path: Path, limits: ImageLimits | None = None
) -> tuple[np.ndarray | None, str | None]:
    """(template of the image's primary face, None), or (None, why not): a rejected or unreadable file, or no
    face found. An image without a template is a failure to enrol, which each protocol counts, never drops."""
    try:
        face = engine.primary_face(decode_image_file(path, limits))
    except (ImageRejected, OSError) as exc:
        return None, str(getattr(exc, "message", exc))
    if face is None:
        return None, "no face found"
    return face.template, None
