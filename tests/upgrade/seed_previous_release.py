"""Fill a scratch database the way the PREVIOUS release would, then fingerprint every row that matters.

Run by tests/test_upgrade.py with an extracted copy of the previous release as the working directory:

    cd OLD_TREE && DJANGO_SETTINGS_MODULE=rfr.settings DATABASE_URL=... \
        python /abs/tests/upgrade/seed_previous_release.py OUT.json --faces FACES_DIR --insightface IMAGES_DIR

The working directory goes first on sys.path, so `rfr`, `cases`, `search`, ... are the old release's own
modules (checked after django.setup()), and every object is made through the old release's services: users
and roles, teams, cases and members, a gallery enrolled from real photos (one image at a time and as a bulk
run), probes uploaded and processed (tasks run eagerly, no REDIS_URL), a face found inside a drawn box,
searches, candidates, first decisions and second reviews, a closed case, a search report and an audit export.

OUT.json then holds `database_fingerprint()`: every row of every table of interest keyed by table label and
primary key, with every concrete field (binary fields as sha256, files by name, times in UTC, permissions by
natural key), guardian object permissions, each user's effective permissions on each case, and the audit
chain's head. tests/upgrade/check_upgraded.py imports this module's `database_fingerprint` to compute the same
over the upgraded database and compares.

Old-release APIs are reached through importlib on purpose: this script is written against the previous
release, which type checkers run on the current tree cannot see.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import decimal
import hashlib
import importlib
import io
import json
import os
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Tables fingerprinted row by row, by their label in the previous release. A model that moves app in a later
# release is found there by tests/upgrade/check_upgraded.py (MOVED_MODELS); the label here stays the old one.
TABLES: tuple[str, ...] = (
    "auth.group",
    "auth.user",
    "authtoken.token",
    "otp_totp.totpdevice",
    "accounts.loginfailure",
    "accounts.loginlockout",
    "cases.team",
    "cases.case",
    "cases.probe",
    "cases.probeface",
    "cases.search",
    "cases.candidate",
    "cases.decision",
    "search.gallery",
    "search.subject",
    "search.galleryimage",
    "search.template",
    "search.enrolmentrun",
    "search.enrolmentitem",
    "search.indexstate",
    "search.indexchange",
    "audit.auditevent",
)
# Many-to-many fields to Permission: recorded as "app_label.codename" (ids of permissions are not data).
PERMISSION_SETS: frozenset[tuple[str, str]] = frozenset(
    {("auth.user", "user_permissions"), ("auth.group", "permissions")}
)
TEAM_SUPERVISOR_GROUP = "rfr-team-{}-supervisors"
PASSWORD = "upgrade-check-password-4821"

ModelResolver = Callable[[str], Any]


# --- fingerprint (shared with check_upgraded.py) -------------------------------------------------------------
def model_by_label(label: str) -> Any:
    from django.apps import apps

    app_label, model_name = label.split(".")
    return apps.get_model(app_label, model_name)


def _encode(field: Any, value: Any) -> Any:
    """A field's value as JSON that reads the same from any process on the same database."""
    from django.db import models

    if value is None:
        return None
    if isinstance(field, models.FileField):
        return str(value.name or "")
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat(timespec="microseconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID | decimal.Decimal):
        return str(value)
    if field.is_relation and field.related_model is not None:
        if field.related_model._meta.label_lower == "contenttypes.contenttype":
            ct = field.related_model.objects.get(pk=value)
            return f"{ct.app_label}.{ct.model}"
        if field.related_model._meta.label_lower == "auth.permission":
            perm = field.related_model.objects.select_related("content_type").get(pk=value)
            return f"{perm.content_type.app_label}.{perm.codename}"
    return json.loads(json.dumps(value, default=str))


def table_rows(label: str, model: Any) -> dict[str, dict[str, Any]]:
    meta = model._meta
    many = list(meta.many_to_many)
    queryset = model._base_manager.order_by("pk")
    if many:
        queryset = queryset.prefetch_related(*[f.name for f in many])
    rows: dict[str, dict[str, Any]] = {}
    for obj in queryset:
        row = {f.attname: _encode(f, getattr(obj, f.attname)) for f in meta.concrete_fields}
        for f in many:
            related = getattr(obj, f.name).all()
            if (label, f.name) in PERMISSION_SETS:
                row[f.name] = sorted(f"{p.content_type.app_label}.{p.codename}" for p in related)
            else:
                row[f.name] = sorted(int(r.pk) for r in related)
        rows[str(obj.pk)] = row
    return rows


def guardian_rows() -> list[list[str]]:
    """Every guardian object permission as [content type, codename, object pk, holder]."""
    from guardian.models import GroupObjectPermission, UserObjectPermission

    out: list[list[str]] = []
    for p in UserObjectPermission.objects.select_related("content_type", "permission"):
        ct = p.content_type
        out.append([f"{ct.app_label}.{ct.model}", p.permission.codename, str(p.object_pk), f"user:{p.user_id}"])
    for g in GroupObjectPermission.objects.select_related("content_type", "permission", "group"):
        ct = g.content_type
        out.append([f"{ct.app_label}.{ct.model}", g.permission.codename, str(g.object_pk), f"group:{g.group.name}"])
    return sorted(out)


def case_access(resolve: ModelResolver) -> dict[str, dict[str, list[str]]]:
    """Each non-superuser's effective permissions on each case (user and group object permissions)."""
    from django.contrib.auth import get_user_model
    from guardian.shortcuts import get_perms

    users = list(get_user_model().objects.filter(is_superuser=False).order_by("pk"))
    access: dict[str, dict[str, list[str]]] = {}
    for case in resolve("cases.case")._base_manager.order_by("pk"):
        held = {str(user.pk): sorted(get_perms(user, case)) for user in users}
        access[str(case.pk)] = {user_id: perms for user_id, perms in held.items() if perms}
    return access


def team_supervisor_groups(resolve: ModelResolver) -> dict[str, list[int] | None]:
    from django.contrib.auth.models import Group

    groups: dict[str, list[int] | None] = {}
    for team in resolve("cases.team")._base_manager.order_by("pk"):
        group = Group.objects.filter(name=TEAM_SUPERVISOR_GROUP.format(team.pk)).first()
        groups[str(team.pk)] = None if group is None else sorted(group.user_set.values_list("pk", flat=True))
    return groups


def audit_head(resolve: ModelResolver) -> dict[str, Any]:
    events = resolve("audit.auditevent")._base_manager
    last = events.order_by("-seq").first()
    return {
        "count": events.count(),
        "last_seq": None if last is None else last.seq,
        "last_row_hash": None if last is None else last.row_hash,
    }


def database_fingerprint(resolve: ModelResolver = model_by_label) -> dict[str, Any]:
    """The state of the database as data: rows per table label, object permissions, access, audit head."""
    return {
        "rows": {label: table_rows(label, resolve(label)) for label in TABLES},
        "guardian": guardian_rows(),
        "case_access": case_access(resolve),
        "team_supervisor_groups": team_supervisor_groups(resolve),
        "audit": audit_head(resolve),
    }


def require_tree(tree: Path, who: str) -> None:
    """Refuse to run with the project's modules from anywhere but `tree` (an editable install, say)."""
    for name in ("rfr", "accounts", "audit", "cases", "search", "faceengine"):
        module_file = Path(importlib.import_module(name).__file__ or "").resolve()
        if not module_file.is_relative_to(tree):
            raise SystemExit(f"{who}: module {name} was imported from {module_file}, not from {tree}")


# --- seeding through the previous release's services --------------------------------------------------------
def _old(module: str) -> Any:
    return importlib.import_module(module)


def _celeba(faces_dir: Path, identities: int) -> list[tuple[str, list[Path]]]:
    """The first identities (numeric order) with at least three photos, each with its photos sorted."""
    by_identity: dict[str, list[Path]] = {}
    with open(faces_dir / "celeba" / "identities.csv", newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(faces_dir / "celeba" / "images" / row["file"])
    chosen = [(i, sorted(p)) for i, p in sorted(by_identity.items(), key=lambda kv: int(kv[0])) if len(p) >= 3]
    return chosen[:identities]


def _request(user: Any = None) -> Any:
    from django.test import RequestFactory

    request = RequestFactory(HTTP_USER_AGENT="rfr-upgrade-seed").get("/")
    if user is not None:
        request.user = user
    return request


def _user(username: str, role: str | None, *, admin_by: Any = None, **fields: Any) -> Any:
    from django.contrib.auth import get_user_model
    from django.db import transaction

    audit = _old("audit.services")
    with transaction.atomic():
        user = get_user_model().objects.create_user(username=username, password=PASSWORD, **fields)
        audit.audit_event_record(
            action="user.created", actor=admin_by, target=user, detail={"username": username, "by": "seed"}
        )
    if role is not None:
        _old("accounts.services").user_role_grant(user=user, role=role, granted_by=admin_by)
    return user


def _team(name: str) -> Any:
    from django.db import transaction

    team_model = model_by_label("cases.team")
    with transaction.atomic():
        team = team_model.objects.create(name=name)
        _old("audit.services").audit_event_record(
            action="team.created", actor=None, target=team, detail={"name": name, "by": "seed"}
        )
    return team


def _enrol_one_at_a_time(gallery: Any, people: list[tuple[str, list[Path]]], admin: Any) -> list[str]:
    search_services = _old("search.services")
    refs: list[str] = []
    for number, (identity, photos) in enumerate(people):
        enrolled = 0
        for photo in photos[:-1]:  # the last photo of each person is kept back as a probe
            if enrolled == (2 if number < 2 else 1):
                break
            try:
                search_services.gallery_image_enrol(
                    gallery=gallery,
                    data=photo.read_bytes(),
                    subject_ref=f"CUST-{identity}",
                    original_filename=photo.name,
                    attributes={"dataset": "CelebA (upgrade check)", "identity": identity},
                    provenance="CelebA development subset",
                    captured_at=dt.date(2020, 1, 1 + number),
                    actor=admin,
                    request=_request(admin),
                )
            except search_services.EnrolmentError:
                continue
            enrolled += 1
        if enrolled:
            refs.append(f"CUST-{identity}")
    return refs


def _enrol_bulk(gallery: Any, people: list[tuple[str, list[Path]]], group_photo: Path, admin: Any) -> Any:
    """A bulk run with enrolled, duplicate (skipped), several-faces and missing-file (failed) items."""
    search_services = _old("search.services")
    entry = search_services.EnrolmentEntry
    entries = [
        entry(path=str(photos[0]), subject_ref=f"WL-{identity}", attributes={"list": "A"})
        for identity, photos in people
    ]
    entries.append(entry(path=str(people[0][1][0]), subject_ref=f"WL-{people[0][0]}", attributes={}))
    entries.append(entry(path=str(group_photo), subject_ref="WL-GROUP", attributes={}))
    entries.append(entry(path="no-such-file.jpg", subject_ref="WL-MISSING", attributes={}))
    run = search_services.enrolment_run_create(
        gallery=gallery,
        images_dir=people[0][1][0].parent,
        entries=entries,
        actor=admin,
        source="upgrade check: CelebA development subset",
    )
    return search_services.enrolment_run_execute(run=run, in_process=True, progress=False)


def _upload(case: Any, user: Any, photo: Path, description: str) -> Any:
    workbench = _old("cases.workbench_services")
    probe = workbench.probe_upload(
        case=case,
        uploaded_by=user,
        data=photo.read_bytes(),
        filename=photo.name,
        source="cctv",
        lawfully_held=True,
        description=description,
        captured_at=dt.datetime(2026, 1, 5, 21, 14, tzinfo=dt.UTC),
        request=_request(user),
    )  # processed on commit: tasks run eagerly without REDIS_URL
    probe.refresh_from_db()
    if probe.status != "done":
        raise SystemExit(f"seed: probe {probe.pk} was not processed ({probe.status} {probe.error_code})")
    return probe


def _search(face: Any, user: Any, gallery_ids: list[int], justification: str, top_k: int) -> Any:
    workbench = _old("cases.workbench_services")
    search = workbench.search_request(
        face=face,
        requested_by=user,
        gallery_ids=gallery_ids,
        justification=justification,
        top_k=top_k,
        threshold=-1.0,  # every subject comes back, so there are candidates to decide on
        small_face_reason="Only image of the suspect." if "very_small" in face.warnings else "",
        request=_request(user),
    )
    search.refresh_from_db()
    if search.status != "done":
        raise SystemExit(f"seed: search {search.pk} did not finish ({search.status} {search.error_code})")
    workbench.search_candidates_view_record(search=search, viewer=user, request=_request(user))
    return search


def _decide(candidate: Any, reviewer: Any, verdict: str, rationale: str) -> None:
    _old("cases.workbench_services").candidate_decision_record(
        candidate=candidate, reviewer=reviewer, decision=verdict, rationale=rationale, request=_request(reviewer)
    )


def _drawn_face(probe: Any, user: Any) -> Any | None:
    """A face found inside a box drawn around a detected one (the service accepts any box with a face)."""
    workbench = _old("cases.workbench_services")
    x, y, w, h = probe.faces.order_by("index").first().box
    box = [max(0.0, x - 0.2 * w), max(0.0, y - 0.2 * h), 1.4 * w, 1.4 * h]
    box[2] = min(box[2], probe.width - box[0])
    box[3] = min(box[3], probe.height - box[1])
    try:
        return workbench.probe_face_from_region(probe=probe, box=box, drawn_by=user, request=_request(user))
    except workbench.WorkbenchError as error:
        print(f"seed: no drawn face ({error.code}); carrying on without one", file=sys.stderr)
        return None


def _audit_export(admin: Any) -> str:
    from django.test import RequestFactory

    request = RequestFactory(HTTP_USER_AGENT="rfr-upgrade-seed").get("/audit/export/")
    request.user = admin
    response = _old("audit.views").audit_export(request)
    data = b"".join(response.streaming_content)
    return hashlib.sha256(data).hexdigest()


def seed(faces_dir: Path, insightface_dir: Path) -> dict[str, Any]:
    from django.contrib.auth.models import Permission
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from rest_framework.authtoken.models import Token

    accounts = _old("accounts.services")
    cases = _old("cases.services")
    search_services = _old("search.services")
    case_model = model_by_label("cases.case")
    gallery_model = model_by_label("search.gallery")

    people = _celeba(faces_dir, 7)
    if len(people) < 7:
        raise SystemExit(f"seed: too few CelebA identities with three photos under {faces_dir}")
    group_photo = insightface_dir / "t1.jpg"

    # A team made and deleted first, so that team ids do not start at 1 and renumbering would show.
    placeholder = _team("Disbanded unit")
    placeholder_id = placeholder.pk
    placeholder.delete()

    root = _user("root", None, is_superuser=True, is_staff=True, email="root@example.org")
    ada = _user("ada", "admin", admin_by=root, first_name="Ada", last_name="Admin", email="ada@example.org")
    ivy = _user("ivy", "investigator", admin_by=ada, first_name="Ivy", last_name="Investigator")
    cole = _user("cole", "investigator", admin_by=ada, first_name="Cole", last_name="Colleague")
    sam = _user("sam", "supervisor", admin_by=ada, first_name="Sam", last_name="Supervisor")
    otto = _user("otto", "investigator", admin_by=ada, first_name="Otto", last_name="Outsider")
    sue = _user("sue", "supervisor", admin_by=ada, first_name="Sue", last_name="Supervisor")
    leo = _user("leo", "investigator", admin_by=ada, first_name="Leo", last_name="Leaver")
    clerk = _user("clerk", None, admin_by=ada, first_name="Team", last_name="Clerk", is_staff=True)
    # Model permissions given to one person directly (as the Django admin would), on the team model.
    clerk.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="cases", codename__in=["view_team", "change_team"])
    )
    accounts.user_role_grant(user=sam, role="investigator", granted_by=ada)  # two roles at once

    crime = _team("Major crime")
    fraud = _team("Fraud")
    for member in (ivy, cole, leo):
        accounts.team_member_add(team=crime, user=member, added_by=ada)
    accounts.team_supervisor_add(team=crime, user=sam, added_by=ada)
    accounts.team_member_add(team=fraud, user=otto, added_by=ada)
    accounts.team_supervisor_add(team=fraud, user=sue, added_by=ada)
    accounts.team_supervisor_add(team=fraud, user=sam, added_by=ada)
    accounts.team_member_remove(team=crime, user=leo, removed_by=ada)
    leo.is_active = False
    leo.save(update_fields=["is_active"])
    # A team deleted last (as from the Django admin), so the highest team id is no longer in use: the
    # previous release never hands it out again, and leaves its supervisor group (and members) behind.
    review = _team("Cold case review")
    accounts.team_supervisor_add(team=review, user=sue, added_by=ada)
    review_id = review.pk
    review.delete()

    Token.objects.get_or_create(user=ivy)
    TOTPDevice.objects.create(user=ada, name="ada's phone", confirmed=True)
    accounts.login_success_record(user=ivy, request=_request(ivy))
    accounts.login_failure_record(username="ivy", request=_request(), reason="bad_password")
    for _ in range(5):
        accounts.login_failure_record(username="mallory", request=_request(), reason="bad_password")

    robbery = cases.case_create(
        owner=ivy,
        reference="OP-1234",
        title="Street robbery",
        purpose=case_model.Purpose.SUSPECT,
        offence_category="Robbery",
        legal_basis="Prevention and detection of crime (DPA 2018 s.35).",
        request=_request(ivy),
    )
    cases.case_member_add(case=robbery, user=cole, added_by=ivy, request=_request(ivy))
    cases.case_member_add(case=robbery, user=otto, added_by=ivy, request=_request(ivy))
    cases.case_member_remove(case=robbery, user=otto, removed_by=ivy, request=_request(ivy))
    burglary = cases.case_create(
        owner=cole,
        reference="OP-2000",
        title="Burglary series",
        purpose=case_model.Purpose.SUSPECT,
        offence_category="Burglary",
        legal_basis="Prevention and detection of crime (DPA 2018 s.35).",
    )
    cases.case_close(case=burglary, closed_by=sam, reason="Suspect charged; no further searches needed.")
    missing = cases.case_create(
        owner=otto,
        reference="MP-77",
        title="Missing person",
        purpose=case_model.Purpose.MISSING,
        offence_category="",
        legal_basis="Protection of life (DPA 2018 s.35, vital interests).",
        team=fraud,
    )
    cases.case_member_add(case=missing, user=ivy, added_by=otto)

    custody = search_services.gallery_create(
        name="Custody (upgrade check)",
        kind=gallery_model.Kind.CUSTODY,
        description="Five CelebA identities",
        provenance="CelebA development subset",
        retention_days=3650,
        actor=ada,
        request=_request(ada),
    )
    custody_refs = _enrol_one_at_a_time(custody, people[:5], ada)
    watchlist = search_services.gallery_create(
        name="Watchlist (upgrade check)",
        kind=gallery_model.Kind.WATCHLIST,
        index_mode=gallery_model.IndexMode.APPROXIMATE,
        actor=ada,
    )
    run = _enrol_bulk(watchlist, people[5:7], group_photo, ada)

    # The first person's held-back photo, and a group photo of six with a drawn box.
    probe = _upload(robbery, ivy, people[0][1][-1], "Still from camera 3")
    group = _upload(robbery, cole, group_photo, "Crowd at the bus stop")
    drawn = _drawn_face(group, cole)
    first = _search(
        probe.faces.order_by("index").first(), ivy, [custody.pk, watchlist.pk], "Robbery suspect, camera 3", 5
    )
    second = _search(drawn or group.faces.order_by("index").first(), cole, [custody.pk], "Witness in the crowd", 3)
    ranked = list(first.candidates.order_by("rank"))
    _decide(ranked[0], ivy, "possible_match", "Same ear shape and scar above the left eyebrow.")
    _decide(ranked[0], sam, "possible_match", "Agreed on independent comparison.")
    _decide(ranked[1], ivy, "not_a_match", "Different nose bridge and hairline.")
    _decide(ranked[2], cole, "inconclusive", "Image too blurred at this scale.")
    other = second.candidates.order_by("rank").first()
    _decide(other, cole, "possible_match", "Similar jaw line.")
    _decide(other, sam, "not_a_match", "Eye distance differs; not agreed.")

    report = _old("cases.report").search_report_pdf(search=first, generated_by=ivy)
    _old("cases.workbench_services").search_report_download_record(
        search=first, user=ivy, sha256=hashlib.sha256(report).hexdigest(), request=_request(ivy)
    )
    # A gallery image removed after it was searched: the candidate keeps its snapshot.
    removed = custody.images.filter(subject__external_ref=custody_refs[1]).order_by("pk").last()
    search_services.gallery_image_delete(image=removed, reason="Image superseded by a newer custody photo", actor=ada)
    export_sha256 = _audit_export(ada)

    return {
        "users": {u.username: u.pk for u in (root, ada, ivy, cole, sam, otto, sue, leo, clerk)},
        "teams": {
            "Major crime": crime.pk,
            "Fraud": fraud.pk,
            "deleted first": placeholder_id,
            "deleted last": review_id,
        },
        "cases": {"open": robbery.pk, "closed": burglary.pk, "other team": missing.pk},
        "galleries": {"custody": custody.pk, "watchlist": watchlist.pk},
        "custody_subjects": custody_refs,
        "enrolment_run": {"id": run.pk, "counts": run.counts},
        "probes": {"single": probe.pk, "group": group.pk, "drawn_face": None if drawn is None else drawn.pk},
        "searches": {"first": first.pk, "second": second.pk},
        "candidate_outcomes": {
            str(c.pk): c.outcome
            for c in model_by_label("cases.candidate").objects.order_by("pk")
            if c.outcome != "unreviewed"
        },
        "audit_export_sha256": export_sha256,
    }


def _audit_verify() -> str:
    from django.core.management import call_command

    out = io.StringIO()
    call_command("audit", "verify", stdout=out)  # raises CommandError when the chain is broken
    return out.getvalue().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("out", type=Path, help="where to write the fingerprint (JSON)")
    parser.add_argument("--faces", type=Path, required=True, help="the shared face data (with celeba/)")
    parser.add_argument("--insightface", type=Path, required=True, help="insightface's data/images folder")
    args = parser.parse_args(argv)

    old_tree = Path.cwd().resolve()
    sys.path.insert(0, str(old_tree))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfr.settings")
    import django
    from django.conf import settings
    from django.db import connection

    django.setup()
    require_tree(old_tree, "seed")
    if not settings.CELERY_TASK_ALWAYS_EAGER:
        raise SystemExit("seed: run without REDIS_URL, so that probes and searches are processed in this process")

    seeded = seed(args.faces.resolve(), args.insightface.resolve())
    verify = _audit_verify()
    if not verify.startswith("OK "):
        raise SystemExit(f"seed: audit verify did not report OK: {verify}")
    fingerprint = database_fingerprint()
    fingerprint["id_high_water"] = {"cases.team": max(seeded["teams"].values())}
    fingerprint["meta"] = {
        "release_tree": str(old_tree),
        "database": connection.vendor,
        "seeded": seeded,
        "audit_verify": verify,
        "counts": {label: len(rows) for label, rows in fingerprint["rows"].items()},
    }
    args.out.write_text(json.dumps(fingerprint, indent=1, sort_keys=True), encoding="utf-8")
    print(f"seeded the {connection.vendor} database with the release in {old_tree}: {verify}")
    print("rows: " + ", ".join(f"{label} {n}" for label, n in fingerprint["meta"]["counts"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
