"""Reads: searching galleries for candidates.

Results are leads for a trained person to assess ("possible match — intelligence only, not an
identification"), never identifications.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
from django.db import connection

from faceengine.normalisation import Normaliser
from rfr.errors import InvalidInput, NotFound
from search.index.interface import IndexVersion, index_backend
from search.models import Gallery, IndexState, Subject, Template

TOP_K_DEFAULT = 50
TOP_K_MAX = 500
# Hits are fetched with a margin so ones dropped by the database check (deleted a moment ago) still
# leave a full list; the loop below widens the fetch if more than the margin were dropped.
_FETCH_MARGIN = 16
# With score normalisation, the raw index gives a shortlist this many times the list length (at least
# _SHORTLIST_MIN) per gallery, which is then re-scored; normalisation reorders within it, it does not reach
# far below it (a raw cosine a long way down stays low after normalisation).
_SHORTLIST_FACTOR = 4
_SHORTLIST_MIN = 200


@dataclass(frozen=True)
class SearchHit:
    template_id: int
    subject_id: int
    subject_ref: str
    gallery_id: int
    gallery_name: str
    image_id: int
    score: float
    pack_key: str
    rank: int


def search_galleries(
    *,
    template: np.ndarray,
    pack_key: str,
    gallery_ids: list[int],
    top_k: int = TOP_K_DEFAULT,
    threshold: float | None = None,
    normaliser: Normaliser | None = None,
) -> list[SearchHit]:
    """The top_k gallery templates most similar to `template` across the galleries, best first.

    With a `normaliser` (the pack's active score cohort, search.cohorts), a raw shortlist is re-scored with
    the normalised score, which is then what is ranked, thresholded and returned as `score`.
    Only templates of `pack_key` are searched. Ties in score are broken by template id (ascending), so the
    order is deterministic. Every hit is checked against the database, so a template deleted a moment ago
    never appears, even if an index has not caught up yet; the same query returns the hits' stored float32
    templates, from which their scores are recomputed (the index holds half-precision copies) and re-ranked.
    Two queries in all, whatever the number of hits: the galleries with their index versions, and the hits.
    """
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= TOP_K_MAX:
        raise InvalidInput("invalid_top_k", f"top_k must be a whole number from 1 to {TOP_K_MAX} (got {top_k!r}).")
    query = np.asarray(template, dtype=np.float32)
    if query.ndim != 1 or query.size == 0 or not np.all(np.isfinite(query)):
        raise InvalidInput("invalid_template", "template must be a one-dimensional array of finite numbers.")
    unique_ids = sorted(set(gallery_ids))
    galleries, states = _galleries_and_versions(unique_ids, pack_key)
    missing = [gid for gid in unique_ids if gid not in galleries]
    if missing:
        raise NotFound("unknown_gallery", f"Unknown gallery ids: {missing}.")
    if not unique_ids:
        return []
    index = index_backend()
    if normaliser is not None:
        live = _normalised_shortlist(query, pack_key, unique_ids, top_k, threshold, normaliser, states)
        rows = _live_templates([tid for _, tid in live], pack_key, unique_ids)
        return _hits(live, rows, galleries, pack_key, top_k)
    fetch = top_k + _FETCH_MARGIN
    while True:
        candidate_ids: list[int] = []
        exhausted = True
        for gallery_id in unique_ids:
            state = states.get(gallery_id)
            if state is None:
                continue  # no template of this pack was ever added to the gallery
            scores, ids = index.search(gallery_id, pack_key, query[None, :], fetch, state=state)
            valid = ids[0] >= 0
            # The index may hold more (above the threshold) beyond this fetch; the margin covers the
            # half-precision rounding of its scores against the threshold.
            if valid.all() and (threshold is None or scores[0][-1] >= threshold - _HALF_PRECISION_MARGIN):
                exhausted = False
            candidate_ids.extend(ids[0][valid].tolist())
        rows = _live_templates(candidate_ids, pack_key, unique_ids)
        live = _rescored(query, rows, threshold)
        if len(live) >= top_k or exhausted or fetch >= TOP_K_MAX * 8:
            break
        fetch *= 2
    return _hits(live, rows, galleries, pack_key, top_k)


# Half precision rounds each score by at most ~1e-3 for unit vectors; a fetch is widened within this margin.
_HALF_PRECISION_MARGIN = 2e-3


def _galleries_and_versions(gallery_ids: list[int], pack_key: str) -> tuple[dict[int, str], dict[int, IndexVersion]]:
    """Gallery names and, for those with templates of the pack, their index version: one statement."""
    if not gallery_ids:
        return {}, {}
    gallery_table, state_table = Gallery._meta.db_table, IndexState._meta.db_table
    marks = ", ".join(["%s"] * len(gallery_ids))
    sql = (
        f"SELECT g.id, g.name, g.index_mode, s.version, s.epoch FROM {gallery_table} g"
        f" LEFT JOIN {state_table} s ON s.gallery_id = g.id AND s.pack_key = %s WHERE g.id IN ({marks})"
    )
    names: dict[int, str] = {}
    states: dict[int, IndexVersion] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, [pack_key, *gallery_ids])
        for gallery_id, name, mode, version, epoch in cursor.fetchall():
            names[gallery_id] = name
            if version is not None:
                # SQLite returns the UUID column as 32 hex digits, PostgreSQL as a UUID: one spelling.
                states[gallery_id] = IndexVersion(version=int(version), epoch=str(uuid.UUID(str(epoch))), mode=mode)
    return names, states


def _rescored(
    query: np.ndarray, rows: dict[int, tuple[int, str, int, int, bytes]], threshold: float | None
) -> list[tuple[float, int]]:
    """(float32 score, template id) of the live hits, best first (ties: lower id), above the threshold."""
    if not rows:
        return []
    template_ids = np.fromiter(rows, dtype=np.int64, count=len(rows))
    gallery = np.frombuffer(b"".join(bytes(rows[tid][4]) for tid in rows), dtype="<f4").reshape(len(rows), -1)
    scores = gallery @ query
    order = np.lexsort((template_ids, -scores))
    live = list(zip(scores[order].tolist(), template_ids[order].tolist(), strict=True))
    if threshold is not None:
        live = [item for item in live if item[0] >= threshold]
    return live


def _hits(
    live: list[tuple[float, int]],
    rows: dict[int, tuple[int, str, int, int, bytes]],
    galleries: dict[int, str],
    pack_key: str,
    top_k: int,
) -> list[SearchHit]:
    hits = []
    for rank, (score, tid) in enumerate(live[:top_k], start=1):
        subject_id, subject_ref, gallery_id, image_id, _embedding = rows[tid]
        hits.append(
            SearchHit(
                template_id=tid,
                subject_id=subject_id,
                subject_ref=subject_ref,
                gallery_id=gallery_id,
                gallery_name=galleries[gallery_id],
                image_id=image_id,
                score=float(score),
                pack_key=pack_key,
                rank=rank,
            )
        )
    return hits


def _normalised_shortlist(
    query: np.ndarray,
    pack_key: str,
    gallery_ids: list[int],
    top_k: int,
    threshold: float | None,
    normaliser: Normaliser,
    states: dict[int, IndexVersion],
) -> list[tuple[float, int]]:
    """(normalised score, template id) of the live shortlisted templates, best first, above the threshold."""
    fetch = max(top_k * _SHORTLIST_FACTOR, _SHORTLIST_MIN)
    raw: dict[int, float] = {}
    for gallery_id in gallery_ids:
        if gallery_id not in states:
            continue
        scores, ids = index_backend().search(gallery_id, pack_key, query[None, :], fetch, state=states[gallery_id])
        valid = ids[0] >= 0
        raw.update(zip(ids[0][valid].tolist(), scores[0][valid].tolist(), strict=True))
    embeddings = dict(
        Template.objects.filter(pk__in=list(raw), pack_key=pack_key, gallery_id__in=gallery_ids).values_list(
            "pk", "embedding"
        )
    )
    if not embeddings:
        return []
    template_ids = sorted(embeddings)
    gallery = np.stack([np.frombuffer(bytes(embeddings[tid]), dtype="<f4") for tid in template_ids])
    # The exact cosine from the stored template (the index may hold a compressed copy).
    normalised = normaliser.normalise(gallery @ query, normaliser.statistics(query), normaliser.statistics(gallery))[0]
    live = [(float(score), tid) for score, tid in zip(normalised.tolist(), template_ids, strict=True)]
    if threshold is not None:
        live = [item for item in live if item[0] >= threshold]
    live.sort(key=lambda c: (-c[0], c[1]))
    return live


def _live_templates(
    template_ids: list[int], pack_key: str, gallery_ids: list[int]
) -> dict[int, tuple[int, str, int, int, bytes]]:
    """template id → (subject id, subject ref, gallery id, image id, embedding) for the hits that still exist.

    Written as one parameterised SQL statement: it runs on every search, and building the equivalent ORM
    query cost more than running it.
    """
    if not template_ids:
        return {}
    template_table, subject_table = Template._meta.db_table, Subject._meta.db_table
    id_marks = ", ".join(["%s"] * len(template_ids))
    gallery_marks = ", ".join(["%s"] * len(gallery_ids))
    sql = (
        f"SELECT t.id, t.subject_id, s.external_ref, t.gallery_id, t.image_id, t.embedding"
        f" FROM {template_table} t JOIN {subject_table} s ON s.id = t.subject_id"
        f" WHERE t.id IN ({id_marks}) AND t.pack_key = %s AND t.gallery_id IN ({gallery_marks})"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*template_ids, pack_key, *gallery_ids])
        return {row[0]: (row[1], row[2], row[3], row[4], row[5]) for row in cursor.fetchall()}
