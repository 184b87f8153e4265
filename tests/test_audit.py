"""The audit trail: append-only at every level, hash-chained, verified by `manage.py audit verify`."""

from __future__ import annotations

import csv
import io
import itertools
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse

from audit.actions import AUDIT_ACTION_DESCRIPTIONS, AuditAction
from audit.forms import action_filter_choices
from audit.models import AuditEvent, AuditImmutableError
from audit.selectors import audit_action_choices
from audit.services import GENESIS_HASH, audit_event_record, canonical_content
from audit.verify import audit_chain_verify
from cases.lifecycle import case_close, case_create, case_member_add, case_member_remove
from cases.models import Case
from rfr.errors import Conflict
from tests.factories import CaseWorld, build_case_world, make_user

TABLE = AuditEvent._meta.db_table
pytestmark = [pytest.mark.django_db, pytest.mark.embedded]


@pytest.fixture(autouse=True)
def _fast_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world() -> CaseWorld:
    return build_case_world()


def _tamper(sql: str, params: list[Any] | None = None) -> None:
    """Run raw SQL against the audit table as an attacker with table-owner rights would: on PostgreSQL the
    append-only trigger is disabled around it (inside the test's transaction, so it is restored after)."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Django's foreign keys are deferred: fire their pending checks so the table can be altered.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_auditevent_append_only")
        cursor.execute(sql, params or [])
        if connection.vendor == "postgresql":
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER audit_auditevent_append_only")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def _record_some(n: int = 5) -> list[AuditEvent]:
    return [
        audit_event_record(
            action=AuditAction.CASE_CREATED, target_type="thing", target_id=i, detail={"i": i, "ratio": 0.5}
        )
        for i in range(n)
    ]


def _verify_output() -> str:
    out = io.StringIO()
    call_command("audit", "verify", stdout=out)
    return out.getvalue()


# ---- the chain


def test_chain_links_each_row_to_the_previous_and_verify_says_ok() -> None:
    events = _record_some(4)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(events):
        assert after.prev_hash == before.row_hash
    assert _verify_output().startswith("OK 4 events verified")


def test_values_read_back_from_the_database_hash_the_same() -> None:
    # Floats, nested detail, IPv6 and non-ASCII text must survive the database round trip unchanged.
    from django.test import RequestFactory

    request = RequestFactory().get("/", REMOTE_ADDR="2001:DB8:0:0::1", HTTP_USER_AGENT="Agent/1.0 ünï")
    audit_event_record(
        action=AuditAction.AUTH_LOGIN,
        request=request,
        detail={"f": 1.0, "g": 0.1, "nested": {"b": [1, 2.5]}, "s": "é"},
    )
    stored = AuditEvent.objects.get()
    assert stored.ip_address == "2001:db8::1"
    assert audit_chain_verify().ok


def test_verify_detects_a_changed_field() -> None:
    events = _record_some(5)
    _tamper(f"UPDATE {TABLE} SET action = %s WHERE id = %s", ["test.innocent", events[2].pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_id == events[2].pk and "changed" in report.reason
    with pytest.raises(CommandError, match=rf"audit event id {events[2].pk}\b"):
        _verify_output()


def test_verify_detects_a_changed_detail() -> None:
    events = _record_some(3)
    _tamper(f"UPDATE {TABLE} SET detail = %s WHERE id = %s", ['{"i": 99, "ratio": 0.5}', events[1].pk])
    assert audit_chain_verify().broken_id == events[1].pk


def test_verify_detects_a_deleted_row() -> None:
    events = _record_some(5)
    _tamper(f"DELETE FROM {TABLE} WHERE id = %s", [events[2].pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_id == events[3].pk and "gap" in report.reason
    with pytest.raises(CommandError, match=rf"audit event id {events[3].pk}\b"):
        _verify_output()


def test_verify_detects_reordered_rows() -> None:
    events = _record_some(5)
    a, b = events[1], events[3]
    # Swap the positions of two rows (via a free value, as seq is unique).
    _tamper(f"UPDATE {TABLE} SET seq = %s WHERE id = %s", [10_000, a.pk])
    _tamper(f"UPDATE {TABLE} SET seq = %s WHERE id = %s", [a.seq, b.pk])
    _tamper(f"UPDATE {TABLE} SET seq = %s WHERE id = %s", [b.seq, a.pk])
    report = audit_chain_verify()
    assert not report.ok and report.broken_id == b.pk  # b now sits where a was
    with pytest.raises(CommandError, match=rf"audit event id {b.pk}\b"):
        _verify_output()


def test_verify_detects_a_rehashed_row_whose_successor_no_longer_links() -> None:
    # An attacker who changes a row and recomputes its own hash still breaks the next row's prev_hash.
    from audit.services import compute_row_hash

    events = _record_some(4)
    target = AuditEvent.objects.get(pk=events[1].pk)
    target.action = "test.forged"
    forged_hash = compute_row_hash(target.prev_hash, target)
    _tamper(
        f"UPDATE {TABLE} SET action = %s, row_hash = %s WHERE id = %s",
        ["test.forged", forged_hash, target.pk],
    )
    report = audit_chain_verify()
    assert not report.ok and report.broken_id == events[2].pk and "prev_hash" in report.reason


# ---- append-only in the application (every database)


def test_model_refuses_change_and_delete() -> None:
    event = _record_some(1)[0]
    event.action = "test.changed"
    with pytest.raises(AuditImmutableError):
        event.save()
    with pytest.raises(AuditImmutableError):
        event.delete()
    assert AuditEvent.objects.get(pk=event.pk).action == AuditAction.CASE_CREATED


def test_queryset_refuses_update_delete_and_bulk_writes() -> None:
    event = _record_some(1)[0]
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.all().delete()
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.bulk_update([event], ["action"])
    with pytest.raises(AuditImmutableError):
        AuditEvent.objects.bulk_create([AuditEvent(seq=99, action="x")])
    assert AuditEvent.objects.count() == 1


# ---- append-only in PostgreSQL itself


@pytest.fixture
def postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip(
            "The append-only trigger exists only on PostgreSQL; run with DATABASE_URL=postgres://... "
            "(CI does). On SQLite the application-level refusal is tested instead."
        )


@pytest.mark.usefixtures("postgres")
@pytest.mark.parametrize(
    "sql",
    [
        f"UPDATE {TABLE} SET action = 'test.changed'",
        f"DELETE FROM {TABLE}",
        f"TRUNCATE {TABLE}",
    ],
    ids=["update", "delete", "truncate"],
)
def test_postgres_trigger_refuses_direct_changes(sql: str) -> None:
    _record_some(2)
    with (
        pytest.raises(DatabaseError, match="append-only"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        # The trigger has no session escape (audit/0004): the same refusal production gets.
        cursor.execute("SET LOCAL rfr.audit_allow_truncate = 'on'")  # the escape that 0002 had, now ignored
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # else TRUNCATE stops at the deferred FK checks
        cursor.execute(sql)
    assert AuditEvent.objects.filter(action=AuditAction.CASE_CREATED).count() == 2
    assert audit_chain_verify().ok


@pytest.mark.usefixtures("postgres")
def test_postgres_triggers_are_installed_and_enabled() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [TABLE],
        )
        triggers = dict(cursor.fetchall())
    assert triggers == {"audit_auditevent_append_only": "O", "audit_auditevent_no_truncate": "O"}


# ---- same transaction as the change


def test_rolled_back_change_leaves_no_event() -> None:
    owner = make_user("owner")
    with pytest.raises(RuntimeError), transaction.atomic():
        case_create(owner=owner, reference="R/1", title="t", purpose="suspect", offence_category="", legal_basis="b")
        raise RuntimeError("the surrounding work failed")
    assert not Case.objects.exists()
    assert not AuditEvent.objects.filter(action="case.created").exists()
    assert audit_chain_verify().ok


def test_failed_service_writes_neither_change_nor_event(world: CaseWorld) -> None:
    before = AuditEvent.objects.count()
    with pytest.raises(Conflict, match="already a member"):
        case_member_add(case=world.case, user=world.users["member"], added_by=world.users["owner"])  # already in
    assert AuditEvent.objects.count() == before


def test_each_case_action_is_audited(world: CaseWorld) -> None:
    case, users = world.case, world.users
    created = AuditEvent.objects.get(action="case.created", case_id=case.pk)
    assert created.actor_id == users["owner"].pk and created.target_id == str(case.pk)
    added = AuditEvent.objects.get(action="case.member_added", case_id=case.pk)
    assert added.detail["user_id"] == users["member"].pk
    case_member_remove(case=case, user=users["member"], removed_by=users["owner"])
    assert AuditEvent.objects.get(action="case.member_removed", case_id=case.pk).detail["username"] == "member"
    case_close(case=case, closed_by=users["supervisor"], reason="no further lines")
    closed = AuditEvent.objects.get(action="case.closed", case_id=case.pk)
    assert closed.actor_id == users["supervisor"].pk and closed.detail == {"reason": "no further lines"}
    for action in ("role.granted", "team.member_added", "team.supervisor_added"):
        assert AuditEvent.objects.filter(action=action).exists(), action
    assert audit_chain_verify().ok


def test_request_metadata_is_recorded(world: CaseWorld) -> None:
    client = Client(HTTP_USER_AGENT="pytest-agent/1", REMOTE_ADDR="10.1.2.3")
    client.force_login(world.users["owner"])
    response = client.post(
        reverse("cases:create"),
        {"reference": "META/1", "title": "t", "purpose": "suspect", "legal_basis": "b"},
    )
    assert response.status_code == 302
    event = AuditEvent.objects.filter(action="case.created").latest("seq")
    assert (event.ip_address, event.user_agent, event.actor_username) == (
        "10.1.2.3",
        "pytest-agent/1",
        "owner",
    )


# ---- no biometric data


@pytest.mark.parametrize(
    "detail",
    [
        {"embedding": [0.1, 0.2]},
        {"outer": {"template": "AAAA"}},
        {"image": "base64..."},
        {"crop": b"\x89PNG"},
        {"scores": [0.01 * i for i in range(128)]},
    ],
    ids=["embedding", "nested-template", "image", "bytes", "float-vector"],
)
def test_biometric_data_is_refused(detail: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        audit_event_record(action=AuditAction.GALLERY_ENROL, detail=detail)
    assert not AuditEvent.objects.exists()


def test_free_text_actions_are_refused_and_write_nothing() -> None:
    # The vocabulary is closed: a string, even one that equals a real action's value, is not accepted.
    for action in ("test.event", "case.created"):
        with pytest.raises(TypeError, match="AuditAction"):
            audit_event_record(action=action, detail={})  # type: ignore[arg-type]
    assert not AuditEvent.objects.exists()


def test_counts_and_ids_are_allowed_in_detail() -> None:
    event = audit_event_record(
        action=AuditAction.GALLERY_ENROL, detail={"images": 3, "gallery_image_id": 7, "top": [0.9, 0.8]}
    )
    assert "images" in canonical_content(event)


# ---- admin: read only


def test_admin_is_read_only(world: CaseWorld) -> None:
    client = Client()
    client.force_login(world.users["admin"])
    event = AuditEvent.objects.first()
    assert event is not None
    assert client.get(reverse("admin:audit_auditevent_changelist")).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_change", args=[event.pk])).status_code == 200
    assert client.get(reverse("admin:audit_auditevent_add")).status_code == 403
    assert client.post(reverse("admin:audit_auditevent_delete", args=[event.pk]), {"post": "yes"}).status_code == 403
    client.post(reverse("admin:audit_auditevent_change", args=[event.pk]), {"action": "x"})
    assert AuditEvent.objects.get(pk=event.pk).action == event.action


# ---- /audit/ for supervisors and admins


def _events_listed(client: Client, **params: Any) -> str:
    response = client.get(reverse("audit-list"), params)
    assert response.status_code == 200
    return response.content.decode().split('<table class="audit-events">', 1)[1]  # the events table only


def test_audit_view_scoped_by_role(world: CaseWorld) -> None:
    other_owner = make_user("stranger")
    from accounts.services import team_member_add

    team_member_add(team=world.team_b, user=other_owner, added_by=world.users["admin"])
    other_case = case_create(
        owner=other_owner,
        reference="ELSEWHERE/9",
        title="t",
        purpose="suspect",
        offence_category="",
        legal_basis="b",
    )
    assert other_case.team == world.team_b

    sup = Client()
    sup.force_login(world.users["supervisor"])
    listed = _events_listed(sup, action="case.created")
    assert "OP-REDWOOD/1" in listed and "ELSEWHERE/9" not in listed
    body = _events_listed(sup, case=f"#{other_case.pk}")
    assert "ELSEWHERE/9" not in body and "No events." in body  # team B's case is not team A's supervisor's business
    assert "No events." in _events_listed(sup, case="ELSEWHERE/9")  # nor found by its reference
    assert "OP-REDWOOD/1" in _events_listed(sup, case="OP-REDWOOD/1")

    adm = Client()
    adm.force_login(world.users["admin"])
    # The admin reads every event, but not the content of a case they are not on (the reference is).
    admin_listed = _events_listed(adm, case=f"#{other_case.pk}")
    assert "case.created" in admin_listed and "ELSEWHERE/9" not in admin_listed
    assert "No events." in _events_listed(adm, case="ELSEWHERE/9")  # a reference finds only a case one is on

    for role in ("owner", "member", "outsider"):
        client = Client()
        client.force_login(world.users[role])
        assert client.get(reverse("audit-list")).status_code == 403
        assert client.get(reverse("audit-export")).status_code == 403


def test_audit_filters(world: CaseWorld) -> None:
    adm = Client()
    adm.force_login(world.users["admin"])
    assert "case.member_added" in _events_listed(adm, user="owner", action="case.")
    assert "case.member_added" not in _events_listed(adm, user="member")
    assert "case.created" in _events_listed(adm, date_from="2000-01-01", date_to="2999-12-31")
    assert "case.created" not in _events_listed(adm, date_to="2000-01-01")
    assert "case.created" in _events_listed(adm, case=f"#{world.case.pk}")


def test_csv_export_is_audited(world: CaseWorld) -> None:
    adm = Client()
    adm.force_login(world.users["admin"])
    response = adm.get(reverse("audit-export"), {"case": f"#{world.case.pk}"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[attr-defined]
    assert rows and {row["case_id"] for row in rows} == {str(world.case.pk)}
    export = AuditEvent.objects.get(action="audit.exported")
    assert export.actor_id == world.users["admin"].pk
    assert export.detail["filters"]["case_id"] == str(world.case.pk) and export.detail["rows"] == len(rows)


def test_case_timeline_shows_the_case_events(world: CaseWorld) -> None:
    client = Client()
    client.force_login(world.users["member"])
    body = client.get(reverse("cases:timeline", kwargs={"case_id": world.case.pk})).content.decode()
    assert "case.created" in body and "case.member_added" in body
    api = client.get(reverse("api-case-audit", kwargs={"case_id": world.case.pk})).json()
    assert {e["action"] for e in api["results"]} >= {"case.created", "case.member_added"}
    assert all(e["case_id"] == world.case.pk for e in api["results"])


def test_every_action_of_the_vocabulary_is_described_and_offered_in_the_filter() -> None:
    assert set(AUDIT_ACTION_DESCRIPTIONS) == set(AuditAction)
    assert all(text.strip().endswith(".") for text in AUDIT_ACTION_DESCRIPTIONS.values())
    assert [code for code, _ in audit_action_choices()] == [action.value for action in AuditAction]
    offered = {code for _group, options in action_filter_choices()[1:] for code, _label in options}
    assert offered >= {action.value for action in AuditAction}
    assert len({action.value for action in AuditAction}) == len(AuditAction)  # no two names share a value
