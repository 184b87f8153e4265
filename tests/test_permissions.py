"""Need-to-know: who can reach which case-scoped page and API endpoint.

HOW TO EXTEND THE MATRIX (read this before adding a case-scoped URL)
--------------------------------------------------------------------
`test_every_case_scoped_url_has_a_matrix_row` walks the whole URL resolver and FAILS for any case-scoped URL
that has no entry in CASE_URL_MATRIX below. A URL pattern is case-scoped when
  (a) its route takes a `case_id`, or
  (b) its route lives under `cases/` or `api/cases/`, or
  (c) its route takes any other object id (a parameter named `pk`, `id` or ending in `_id`, e.g. `probe_id`,
      `search_id`, `candidate_id`): objects under a case are reached through their case,
unless it is listed in NOT_CASE_SCOPED with the reason. Django admin URLs are excluded (staff only; see
`test_no_case_content_in_admin`).

To add a URL: add `"<url name as passed to reverse()>": [Row(...), ...]` to CASE_URL_MATRIX (one Row per
HTTP method you want exercised, usually GET and any POST):
  - `expect` maps each role in tests.factories.ROLES to the status code it must get. Use `viewers(...)`:
    owner, member and the team's supervisor may view; other_sup, admin and outsider must get 404.
  - `kwargs(world)` returns the URL kwargs. For objects under the case, create them in `world.extra` with
    `setup(world)` (e.g. a probe) and return their ids: `kwargs=lambda w: {"probe_id": w.extra["probe"].pk}`.
  - `data(world)` is the POST body; `lists_case=True` checks a list shows the case exactly to its viewers.
Each role's request runs inside a rolled-back savepoint, so POST rows do not affect one another.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from cases.access import case_get_for_user, cases_visible_to
from cases.lifecycle import case_close
from cases.models import Case
from cases.notes import case_note_add
from tests.factories import ROLES, CaseWorld, build_case_world, make_user, workbench_objects_create
from tests.video_factories import video_objects_create

VIEWERS = ("owner", "member", "supervisor")


def viewers(owner: int = 200, member: int = 200, supervisor: int = 200) -> dict[str, int]:
    """Expected codes: given ones for the three viewers; 404 for other_sup, admin and outsider."""
    return {
        "owner": owner,
        "member": member,
        "supervisor": supervisor,
        "other_sup": 404,
        "admin": 404,
        "outsider": 404,
    }


def everyone(code: int = 200) -> dict[str, int]:
    return dict.fromkeys(ROLES, code)


def _case_kwargs(world: CaseWorld) -> dict[str, Any]:
    return {"case_id": world.case.pk}


@dataclass(frozen=True)
class Row:
    expect: dict[str, int]
    method: str = "GET"
    kwargs: Callable[[CaseWorld], dict[str, Any]] = _case_kwargs
    data: Callable[[CaseWorld], dict[str, Any]] | None = None
    setup: Callable[[CaseWorld], None] | None = None
    lists_case: bool = False
    json: bool = False  # also check that error responses are JSON
    note: str = field(default="", compare=False)


def _no_kwargs(world: CaseWorld) -> dict[str, Any]:
    return {}


def _case_mark_closed(world: CaseWorld) -> None:
    Case.objects.filter(pk=world.case.pk).update(status=Case.Status.CLOSED)


def _note_create(world: CaseWorld) -> None:
    """A note by the case owner, for the note rows (idempotent per world)."""
    if "note" not in world.extra:
        world.extra["note"] = case_note_add(case=world.case, author=world.case.owner, text="First note.")


def _wb(key: str) -> Callable[[CaseWorld], dict[str, Any]]:
    """URL kwargs for a workbench object made by workbench_objects_create: {"<key>_id": pk}."""
    return lambda world: {f"{key}_id": world.extra[key].pk}


def _case_closed(world: CaseWorld) -> None:
    """The case closed by its owner (once), for the rows that reopen it."""
    world.case.refresh_from_db()
    if world.case.is_open:
        case_close(case=world.case, closed_by=world.users["owner"], reason="enquiry complete")


CASE_URL_MATRIX: dict[str, list[Row]] = {
    # ---- pages (cases/urls.py)
    "cases:list": [Row(everyone(200), kwargs=_no_kwargs, lists_case=True)],
    "cases:create": [
        Row(everyone(200), kwargs=_no_kwargs),
        Row(
            everyone(302),
            method="POST",
            kwargs=_no_kwargs,
            data=lambda w: {"reference": "NEW/1", "title": "t", "purpose": "suspect", "legal_basis": "basis"},
            note="anyone signed in may open their own case",
        ),
    ],
    "cases:detail": [Row(viewers())],
    "cases:members": [
        Row(viewers()),
        Row(
            viewers(owner=302, member=403, supervisor=403),
            method="POST",
            data=lambda w: {"username": "outsider", "add": "1"},
            note="only the owner manages members",
        ),
    ],
    "cases:close": [
        Row(viewers(owner=200, member=403, supervisor=200), note="the confirmation step: owner or team supervisor"),
        Row(viewers(owner=302, member=403, supervisor=302), method="POST", data=lambda w: {"reason": "done"}),
    ],
    "cases:reopen": [
        Row(viewers(owner=302, member=302, supervisor=302), note="an open case: back to the case page"),
        Row(
            viewers(owner=403, member=403, supervisor=302),
            method="POST",
            setup=_case_mark_closed,
            data=lambda w: {"reason": "new evidence"},
            note="a closed case: only a supervisor of its team reopens it",
        ),
    ],
    "cases:note-new": [
        Row(viewers(owner=302, member=302, supervisor=302), method="POST", data=lambda w: {"text": "A note."}),
    ],
    "cases:note": [
        Row(viewers(), setup=_note_create, kwargs=lambda w: {"case_id": w.case.pk, "note_id": w.extra["note"].pk}),
        Row(
            viewers(owner=302, member=403, supervisor=403),
            method="POST",
            setup=_note_create,
            kwargs=lambda w: {"case_id": w.case.pk, "note_id": w.extra["note"].pk},
            data=lambda w: {"text": "Edited."},
            note="only the note's author (the owner here) edits it",
        ),
    ],
    "cases:timeline": [Row(viewers())],
    # ---- API (cases/api_urls.py)
    "api-case-list": [
        Row(everyone(200), kwargs=_no_kwargs, lists_case=True, json=True),
        Row(
            everyone(201),
            method="POST",
            kwargs=_no_kwargs,
            data=lambda w: {"reference": "API/1", "title": "t", "purpose": "suspect", "legal_basis": "basis"},
            json=True,
        ),
    ],
    "api-case-detail": [Row(viewers(), json=True)],
    "api-case-audit": [Row(viewers(), json=True)],
    "api-case-access": [Row(viewers(), json=True)],
    # ---- the workbench under a case (cases/urls.py, cases/api_urls.py): probes, faces, searches, candidates.
    "cases:workbench": [Row(viewers())],
    "cases:probe-upload": [
        Row(
            viewers(owner=302, member=302, supervisor=403),
            method="POST",
            data=lambda w: {},
            note="no file: sent back to the workbench; a supervisor may view but not search (upload)",
        ),
    ],
    **{
        name: [Row(viewers(), setup=workbench_objects_create, kwargs=_wb(key))]
        for name, key in [
            ("cases:probe", "probe"),
            ("cases:probe-status", "probe"),
            ("cases:probe-image", "probe"),
            ("cases:probe-display", "probe"),
            ("cases:face-crop", "face"),
            ("cases:search", "search"),
            ("cases:search-status", "search"),
            ("cases:search-report", "search"),
            ("cases:candidate", "candidate"),
            ("cases:candidate-image", "candidate"),
            ("cases:candidate-crop", "candidate"),
            ("cases:candidate-thumb", "candidate"),
        ]
    },
    "cases:probe-draw": [
        Row(
            viewers(owner=302, member=302, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("probe"),
            data=lambda w: {},
            note="no box: sent back to the probe; a supervisor may view but not search",
        ),
    ],
    "cases:probe-mark": [
        Row(viewers(supervisor=403), setup=workbench_objects_create, kwargs=_wb("probe")),
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("probe"),
            data=lambda w: {},
            note="no points: the page comes back with the error; a supervisor may view but not search",
        ),
    ],
    "cases:probe-region": [Row(viewers(), setup=workbench_objects_create, kwargs=_wb("probe"))],
    "cases:probe-mark-preview": [
        Row(viewers(owner=400, member=400, supervisor=400), setup=workbench_objects_create, kwargs=_wb("probe")),
    ],
    "cases:probe-enhance": [
        Row(viewers(supervisor=403), setup=workbench_objects_create, kwargs=_wb("probe")),
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("probe"),
            data=lambda w: {},
            note="no operations: the builder comes back with the error; a supervisor may view but not enhance",
        ),
    ],
    "cases:probe-enhance-preview": [
        Row(
            viewers(owner=400, member=400, supervisor=403),
            setup=workbench_objects_create,
            kwargs=_wb("probe"),
            note="no operations: a JSON error the builder shows (refusals by access are the pages' own)",
        ),
    ],
    "cases:face-search": [
        Row(viewers(supervisor=403), setup=workbench_objects_create, kwargs=_wb("face")),
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("face"),
            data=lambda w: {"galleries": [w.extra["gallery"].pk]},
            note="no justification: the form comes back with the error",
        ),
    ],
    "cases:candidate-decide": [
        Row(
            viewers(owner=302, member=302, supervisor=302),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("candidate"),
            data=lambda w: {"decision": "not_a_match", "rationale": "different nose"},
        ),
    ],
    "api-case-probes": [
        Row(viewers(), json=True),
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            data=lambda w: {"source": "cctv", "lawfully_held": "true"},
            json=True,
            note="no image: a JSON error; a supervisor may view but not upload",
        ),
    ],
    "api-probe": [Row(viewers(), setup=workbench_objects_create, kwargs=_wb("probe"), json=True)],
    "api-probe-faces": [
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("probe"),
            data=lambda w: {},
            json=True,
        ),
    ],
    "api-probe-landmarks": [
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("probe"),
            data=lambda w: {},
            json=True,
        ),
    ],
    "api-probe-derived": [
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("probe"),
            data=lambda w: {},
            json=True,
            note="no operations",
        ),
    ],
    "api-probe-enhancement-preview": [
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("probe"),
            data=lambda w: {},
            json=True,
            note="no operations",
        ),
    ],
    "api-face-searches": [
        Row(
            viewers(owner=400, member=400, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("face"),
            data=lambda w: {"galleries": [w.extra["gallery"].pk]},
            json=True,
            note="no justification",
        ),
    ],
    "api-search": [Row(viewers(), setup=workbench_objects_create, kwargs=_wb("search"), json=True)],
    "api-search-keep-searching": [
        Row(viewers(), setup=workbench_objects_create, kwargs=_wb("search"), json=True),
        Row(
            viewers(owner=200, member=200, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("search"),
            data=lambda w: {"keep": True},
            json=True,
            note="owner and members; a supervisor may view but not search",
        ),
    ],
    "cases:search-keep-searching": [
        Row(
            viewers(owner=302, member=302, supervisor=403),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("search"),
            data=lambda w: {"keep": "1"},
        ),
    ],
    "api-search-status": [Row(viewers(), setup=workbench_objects_create, kwargs=_wb("search"), json=True)],
    "api-candidate-decisions": [
        Row(
            viewers(owner=201, member=201, supervisor=201),
            method="POST",
            setup=workbench_objects_create,
            kwargs=_wb("candidate"),
            data=lambda w: {"decision": "not_a_match", "rationale": "different nose"},
            json=True,
        ),
    ],
    # ---- API completeness (issue 13): closing and reopening, a case's searches, one candidate, the images
    "api-case-close": [
        Row(
            viewers(owner=200, member=403, supervisor=200),
            method="POST",
            data=lambda w: {"reason": "enquiry complete"},
            json=True,
            note="the owner or a supervisor of the case's team closes",
        ),
    ],
    "api-case-reopen": [
        Row(
            viewers(owner=403, member=403, supervisor=200),
            method="POST",
            setup=_case_closed,
            data=lambda w: {"reason": "new evidence"},
            json=True,
            note="only a supervisor of the case's team reopens",
        ),
    ],
    "api-case-searches": [Row(viewers(), setup=workbench_objects_create, json=True)],
    **{
        name: [Row(viewers(), setup=workbench_objects_create, kwargs=_wb(key), json=True)]
        for name, key in [
            ("api-candidate", "candidate"),
            ("api-probe-image", "probe"),
            ("api-probe-display", "probe"),
            ("api-face-crop", "face"),
            ("api-candidate-image", "candidate"),
            ("api-candidate-crop", "candidate"),
        ]
    },
}
# ---- video evidence (cases/video_views.py, cases/video_api.py): footage, frames, tracks, merges.
CASE_URL_MATRIX.update(
    {
        "cases:video-upload": [
            Row(viewers(supervisor=403)),
            Row(
                viewers(owner=302, member=302, supervisor=403),
                method="POST",
                data=lambda w: {},
                note="no file: sent back to the form; a supervisor may view but not upload",
            ),
        ],
        **{
            name: [Row(viewers(), setup=video_objects_create, kwargs=_wb("video"))]
            for name in ("cases:video", "cases:video-status", "cases:video-original", "cases:video-frame")
        },
        "cases:video-frame-image": [Row(viewers(), setup=video_objects_create, kwargs=_wb("video"))],
        "cases:video-grab": [
            Row(
                viewers(owner=302, member=302, supervisor=403),
                method="POST",
                setup=video_objects_create,
                kwargs=_wb("video"),
                data=lambda w: {"t": "0.5"},
            ),
        ],
        "cases:track": [Row(viewers(), setup=video_objects_create, kwargs=_wb("track"))],
        "cases:track-shot": [
            Row(viewers(), setup=video_objects_create, kwargs=lambda w: {"track_id": w.extra["track"].pk, "rank": 1})
        ],
        "cases:track-search": [
            Row(
                viewers(owner=302, member=302, supervisor=403),
                method="POST",
                setup=video_objects_create,
                kwargs=_wb("track"),
            )
        ],
        "cases:merge-decide": [
            Row(
                viewers(owner=302, member=302, supervisor=403),
                method="POST",
                setup=video_objects_create,
                kwargs=_wb("merge"),
                data=lambda w: {"decision": "reject"},
            ),
        ],
        "api-case-videos": [
            Row(viewers(), json=True),
            Row(viewers(owner=400, member=400, supervisor=403), method="POST", data=lambda w: {}, json=True),
        ],
        "api-video": [Row(viewers(), setup=video_objects_create, kwargs=_wb("video"), json=True)],
        "api-video-stills": [
            Row(
                viewers(owner=201, member=201, supervisor=403),
                method="POST",
                setup=video_objects_create,
                kwargs=_wb("video"),
                data=lambda w: {"time_s": 0.5},
                json=True,
            ),
        ],
        "api-track-searches": [
            Row(
                viewers(owner=400, member=400, supervisor=403),
                method="POST",
                setup=video_objects_create,
                kwargs=_wb("track"),
                data=lambda w: {"galleries": []},
                json=True,
                note="no justification",
            ),
        ],
        "api-merge-decision": [
            Row(
                viewers(owner=200, member=200, supervisor=403),
                method="POST",
                setup=video_objects_create,
                kwargs=_wb("merge"),
                data=lambda w: {"decision": "reject"},
                json=True,
            ),
        ],
    }
)

# URL names that the discovery rule would catch but that are not case-scoped, each with the reason.
NOT_CASE_SCOPED: dict[str, str] = {
    "manage:user": "an account on rfr's admin pages (admins only, 403 for others: tests/test_grants_pages.py)",
    "manage:user-action": "a change to an account on rfr's admin pages (admins only: tests/test_grants_pages.py)",
    "manage:team": "a team on rfr's admin pages (admins only: tests/test_grants_pages.py)",
    "api-auth-token-detail": "one's own API token (404 for anyone else's: tests/test_api_completeness.py)",
}
NOT_CASE_SCOPED["cases:notification-open"] = (
    "one's own notification: anyone else's, or one whose case its recipient no longer sees, is 404"
    " (tests/test_queue.py)"
)
# rfr's own gallery and model-pack pages (search/urls.py): admins only, 403 for everyone else
# (tests/test_galadmin_galleries.py, tests/test_galadmin_packs.py); galleries hold no case content.
NOT_CASE_SCOPED.update(
    {
        f"search:{name}": "gallery administration, admins only (tests/test_galadmin_*.py)"
        for name in (
            "manage-gallery",
            "manage-gallery-retention",
            "manage-gallery-purge",
            "manage-gallery-enrol-zip",
            "manage-gallery-enrol-folder",
            "manage-enrolment-run",
            "manage-enrolment-run-resume",
            "manage-enrolment-run-status",
            "manage-subject",
            "manage-subject-remove",
            "manage-image-remove",
            "manage-reembed-run",
            "manage-reembed-run-status",
        )
    }
)
# The accuracy evidence of a model pack (search/urls.py): admins and supervisors, 403 for everyone else
# (tests/test_accuracy_pages.py); evaluation runs hold research data sets' figures, no case content.
NOT_CASE_SCOPED.update(
    {
        f"search:{name}": "accuracy evidence, admins and supervisors only (tests/test_accuracy_pages.py)"
        for name in ("manage-accuracy-run", "manage-accuracy-run-status", "manage-accuracy-curve")
    }
)
# Score-normalisation cohorts (search/urls.py): admins only, 403 for everyone else (tests/test_normalisation.py);
# a cohort holds research templates, no case content.
NOT_CASE_SCOPED["search:manage-cohort-activate"] = (
    "score-normalisation cohort, admins only (tests/test_normalisation.py)"
)

_PARAM = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>\w+)>")
_ID_PARAM = re.compile(r"^(pk|id|.+_id)$")


def _walk(patterns: list[Any], prefix: str = "", namespace: str = "") -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            ns = namespace
            if entry.namespace:
                ns = f"{namespace}:{entry.namespace}" if namespace else entry.namespace
            found.extend(_walk(entry.url_patterns, route, ns))
        elif isinstance(entry, URLPattern):
            name = entry.name or f"<unnamed {route}>"
            found.append((f"{namespace}:{name}" if namespace else name, route))
    return found


def _params(route: str) -> set[str]:
    names = {m.group("name") for m in _PARAM.finditer(route)}
    names |= set(re.findall(r"\(\?P<(\w+)>", route))  # re_path patterns
    return names


def case_scoped_urls() -> dict[str, str]:
    """{url name: route} of every URL pattern the discovery rule (module docstring) calls case-scoped."""
    scoped: dict[str, str] = {}
    for name, route in _walk(get_resolver().url_patterns):
        if name.startswith("admin:"):
            continue
        plain = route.lstrip("^")
        params = _params(route)
        if "case_id" in params or plain.startswith(("cases/", "api/cases/")) or any(_ID_PARAM.match(p) for p in params):
            scoped[name] = route
    return scoped


def test_every_case_scoped_url_has_a_matrix_row() -> None:
    missing = {
        name: route
        for name, route in case_scoped_urls().items()
        if name not in CASE_URL_MATRIX and name not in NOT_CASE_SCOPED
    }
    assert not missing, (
        "These case-scoped URLs have no row in tests/test_permissions.py CASE_URL_MATRIX "
        "(see the module docstring for how to add one):\n"
        + "\n".join(f"  {n}: /{r}" for n, r in sorted(missing.items()))
    )


def test_matrix_has_no_stale_rows() -> None:
    scoped = case_scoped_urls()
    stale = sorted(set(CASE_URL_MATRIX) - set(scoped))
    assert not stale, f"Matrix rows for URLs that no longer exist or are not case-scoped: {stale}"


def test_outsiders_get_404_on_every_object_url_in_the_matrix() -> None:
    # A row may not quietly expect 403/200 for an outsider on a URL that names a case or an object under it.
    scoped = case_scoped_urls()
    for name, rows in CASE_URL_MATRIX.items():
        if not any(_ID_PARAM.match(p) for p in _params(scoped.get(name, ""))):
            continue
        for row in rows:
            for role in ("outsider", "other_sup", "admin"):
                assert row.expect[role] == 404, f"{name} {row.method}: {role} must get 404, row says {row.expect[role]}"


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(db: None) -> CaseWorld:
    return build_case_world()


class _Rollback(Exception):
    pass


def _request(client: Client, row: Row, url: str, world: CaseWorld) -> Any:
    body = row.data(world) if row.data else {}
    if row.method == "GET":
        return client.get(url)
    if row.method == "POST":
        return client.post(url, body)
    return client.generic(row.method, url)


MATRIX_ROWS = [(name, index) for name, rows in CASE_URL_MATRIX.items() for index in range(len(rows))]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "index"), MATRIX_ROWS, ids=[f"{n}-{CASE_URL_MATRIX[n][i].method}" for n, i in MATRIX_ROWS]
)
def test_permission_matrix(world: CaseWorld, name: str, index: int) -> None:
    row = CASE_URL_MATRIX[name][index]
    assert set(row.expect) == set(ROLES), f"{name}: expect must name every role in {ROLES}"
    if row.setup:
        row.setup(world)
    url = reverse(name, kwargs=row.kwargs(world))
    failures = []
    for role in ROLES:
        client = Client()
        client.force_login(world.users[role])
        try:
            with transaction.atomic():
                response = _request(client, row, url, world)
                got = response.status_code
                if got != row.expect[role]:
                    failures.append(f"{role}: {row.method} {url} -> {got}, expected {row.expect[role]}")
                elif row.json and got >= 400:
                    assert response["Content-Type"].startswith("application/json"), f"{role}: {url} error not JSON"
                if row.lists_case and got == 200:
                    shown = world.case.reference in response.content.decode()
                    if shown != (role in VIEWERS):
                        failures.append(f"{role}: {url} {'shows' if shown else 'hides'} the case")
                raise _Rollback
        except _Rollback:
            pass
    assert not failures, "\n".join(failures)


@pytest.mark.django_db
def test_anonymous_is_sent_to_sign_in_on_every_case_url(world: CaseWorld) -> None:
    client = Client()
    for name, rows in CASE_URL_MATRIX.items():
        row = rows[0]
        if row.setup:
            row.setup(world)
        url = reverse(name, kwargs=row.kwargs(world))
        response = client.get(url)
        if url.startswith("/api/"):
            assert response.status_code in (401, 403), f"{url} -> {response.status_code}"
        else:
            assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url


@pytest.mark.django_db
def test_missing_case_is_404_like_a_forbidden_one(world: CaseWorld) -> None:
    client = Client()
    client.force_login(world.users["owner"])
    for name in ("cases:detail", "api-case-detail", "cases:timeline", "api-case-audit"):
        assert client.get(reverse(name, kwargs={"case_id": world.case.pk + 1000})).status_code == 404


@pytest.mark.django_db
def test_selectors_follow_need_to_know(world: CaseWorld) -> None:
    from django.core.exceptions import PermissionDenied
    from django.http import Http404

    for role in ROLES:
        user = world.users[role]
        visible = cases_visible_to(user=user).filter(pk=world.case.pk).exists()
        assert visible == (role in VIEWERS), role
        if role in VIEWERS:
            assert case_get_for_user(user=user, case_id=world.case.pk).pk == world.case.pk
        else:
            with pytest.raises(Http404):
                case_get_for_user(user=user, case_id=world.case.pk)
    # Searching: owner and members may; the supervisor may view but not search (403, not 404).
    for role in ("owner", "member"):
        case_get_for_user(user=world.users[role], case_id=world.case.pk, perm="cases.search_case")
    with pytest.raises(PermissionDenied):
        case_get_for_user(user=world.users["supervisor"], case_id=world.case.pk, perm="cases.search_case")


@pytest.mark.django_db
def test_supervisor_added_later_sees_existing_cases_and_loses_them_on_removal(world: CaseWorld) -> None:
    from accounts.services import team_supervisor_add, team_supervisor_remove

    late = make_user("late_sup", role="supervisor")
    assert not cases_visible_to(user=late).exists()
    team_supervisor_add(team=world.team_a, user=late, added_by=world.users["admin"])
    assert list(cases_visible_to(user=late)) == [world.case]
    # The reverse side of the relation is kept in step too.
    late.supervised_teams.remove(world.team_a)
    assert not cases_visible_to(user=late).exists()
    late.supervised_teams.add(world.team_a)
    assert cases_visible_to(user=late).exists()
    late.supervised_teams.clear()
    assert not cases_visible_to(user=late).exists()
    # Removing a supervisor who is also an explicit member keeps the membership.
    from cases.lifecycle import case_member_add

    case_member_add(case=world.case, user=late, added_by=world.users["owner"])
    team_supervisor_add(team=world.team_a, user=late, added_by=world.users["admin"])
    team_supervisor_remove(team=world.team_a, user=late, removed_by=world.users["admin"])
    assert cases_visible_to(user=late).exists()


@pytest.mark.django_db
def test_moving_a_case_to_another_team_moves_supervision(world: CaseWorld) -> None:
    case = world.case
    case.team = world.team_b
    case.save()
    assert not cases_visible_to(user=world.users["supervisor"]).filter(pk=case.pk).exists()
    assert cases_visible_to(user=world.users["other_sup"]).filter(pk=case.pk).exists()


@pytest.mark.django_db
def test_member_removed_loses_access(world: CaseWorld) -> None:
    from cases.lifecycle import case_member_remove

    case_member_remove(case=world.case, user=world.users["member"], removed_by=world.users["owner"])
    client = Client()
    client.force_login(world.users["member"])
    assert client.get(reverse("cases:detail", kwargs={"case_id": world.case.pk})).status_code == 404


@pytest.mark.django_db
def test_admin_added_to_a_case_sees_it(world: CaseWorld) -> None:
    from cases.lifecycle import case_member_add

    admin_user = world.users["admin"]
    assert not cases_visible_to(user=admin_user).exists()
    case_member_add(case=world.case, user=admin_user, added_by=world.users["owner"])
    assert cases_visible_to(user=admin_user).filter(pk=world.case.pk).exists()


def test_no_case_content_in_admin() -> None:
    # Separation of duties: the Django admin (staff) must not become a back door to case content.
    case_labels = {m._meta.label for m in admin.site._registry if m._meta.app_label == "cases"}
    assert Case._meta.label not in case_labels
    assert not any(label != "cases.Team" for label in case_labels), case_labels
