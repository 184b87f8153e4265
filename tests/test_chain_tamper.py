"""Tampering with the audit trail is found by `manage.py audit verify` (issue 9, finding 2).

An attacker with the audit table owner's rights (simulated on PostgreSQL by a role that owns the table and
disables its triggers) empties the table, deletes a middle row and re-hashes the rest of the chain without the
key, or cuts rows off the end; each is reported as TAMPERING, by the command's own output and exit code. The
application's role (audit.dbroles) can do none of it. Anchor lines are written as events commit, so the tests
run the on-commit callbacks (`django_capture_on_commit_callbacks`) or commit for real.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection, transaction
from django.db.backends.utils import CursorWrapper

from audit.actions import AuditAction
from audit.checks import audit_database_role_check
from audit.dbroles import database_roles_check, database_roles_grant
from audit.keys import audit_key
from audit.models import AuditEvent, HashScheme
from audit.services import GENESIS_HASH, audit_event_record, canonical_content
from audit.tasks import audit_anchor_task
from rfr.queues import TASK_QUEUES, Queue, TaskName
from tests.factories import make_user

REPO = Path(__file__).resolve().parent.parent
TABLE = AuditEvent._meta.db_table


@dataclass
class Verify:
    exit_code: int
    stdout: str
    stderr: str


def _verify() -> Verify:
    """`manage.py audit verify` in this process: a CommandError is what exits 1 from the command line."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("audit", "verify", stdout=out, stderr=err)
    except CommandError as error:
        return Verify(1, out.getvalue(), err.getvalue() + f"CommandError: {error}\n")
    return Verify(0, out.getvalue(), err.getvalue())


def _record(n: int, capture: Any | None = None) -> list[AuditEvent]:
    """n events; with `capture` (django_capture_on_commit_callbacks) their anchor lines are written too."""

    def record() -> list[AuditEvent]:
        return [
            audit_event_record(action=AuditAction.CASE_CREATED, target_type="thing", target_id=i, detail={"i": i})
            for i in range(n)
        ]

    if capture is None:
        return record()
    with capture(execute=True):
        return record()


def _unkeyed_hash(prev_hash: str, event: AuditEvent) -> str:
    """What an attacker without the key can compute: the plain sha256 of the documented canonical content."""
    return hashlib.sha256((prev_hash + "\n" + canonical_content(event)).encode("utf-8")).hexdigest()


def _role_name(kind: str) -> str:
    return f"rfr_test_{kind}_{uuid.uuid4().hex[:10]}"


@contextmanager
def as_table_owner() -> Iterator[CursorWrapper]:
    """A cursor with the audit table owner's rights and its triggers disabled, as an attacker would have.

    On PostgreSQL: a fresh role is made owner of the audit table and the statements run under SET ROLE, with
    the append-only triggers disabled by that owner (what any owner may do); afterwards the triggers, the
    owner and the role are put back. On SQLite, which has no trigger, a plain cursor.
    """
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            yield cursor
            return
        owner = _role_name("owner")
        cursor.execute("SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = %s::regclass", [TABLE])
        original_owner = cursor.fetchone()[0]
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # TRUNCATE refuses a table with pending FK checks
        cursor.execute(f"CREATE ROLE {owner} NOLOGIN")
        cursor.execute(f"ALTER TABLE {TABLE} OWNER TO {owner}")
        cursor.execute(f"SET ROLE {owner}")
        cursor.execute(f"ALTER TABLE {TABLE} DISABLE TRIGGER USER")
        try:
            yield cursor
        finally:
            cursor.execute(f"ALTER TABLE {TABLE} ENABLE TRIGGER USER")
            cursor.execute("RESET ROLE")
            cursor.execute(f'ALTER TABLE {TABLE} OWNER TO "{original_owner}"')
            cursor.execute(f"DROP ROLE {owner}")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")


@pytest.fixture
def postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (triggers, roles, TRUNCATE); run with DATABASE_URL=postgres://... as CI does")


@pytest.fixture
def anchor_file() -> Path:
    return Path(settings.RFR_AUDIT_ANCHOR_FILE)  # a fresh file per test (tests/conftest.py)


# ---- a clean chain, and what verify says it could not check


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_clean_chain_verifies_ok_with_its_count_and_anchor(django_capture_on_commit_callbacks: Any) -> None:
    events = _record(4, django_capture_on_commit_callbacks)
    result = _verify()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        f"OK 4 events verified; anchor matched at 4 events up to seq 4; head hash {events[-1].row_hash}"
    )
    assert "WARNING" not in result.stderr
    assert {event.hash_scheme for event in AuditEvent.objects.all()} == {HashScheme.HMAC_SHA256}


@pytest.mark.django_db
@pytest.mark.embedded
def test_rows_are_keyed_so_their_plain_sha256_is_not_their_hash() -> None:
    (event,) = _record(1)
    assert event.prev_hash == GENESIS_HASH
    assert event.row_hash != _unkeyed_hash(event.prev_hash, event)
    message = (event.prev_hash + "\n" + canonical_content(event)).encode()
    assert event.row_hash == hmac.new(audit_key(), message, hashlib.sha256).hexdigest()


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_missing_anchor_is_a_warning_not_a_silent_ok(anchor_file: Path) -> None:
    _record(3)  # never committed, so never anchored
    assert not anchor_file.exists()
    result = _verify()
    assert result.exit_code == 0 and result.stdout.startswith("OK 3 events verified; head hash ")
    assert f"WARNING: no anchor file at {anchor_file}" in result.stderr


@pytest.mark.django_db
@pytest.mark.embedded
def test_an_anchor_behind_the_chain_is_a_warning_until_audit_anchor_runs(
    django_capture_on_commit_callbacks: Any, anchor_file: Path
) -> None:
    _record(2, django_capture_on_commit_callbacks)
    _record(3)  # not anchored (as if the anchor write had failed)
    result = _verify()
    assert result.exit_code == 0
    assert "reaches seq 2 of 5: the last 3 events are not anchored" in result.stderr

    out = io.StringIO()
    call_command("audit", "anchor", stdout=out)
    assert out.getvalue().startswith(f"Anchored seq 5 ({AuditEvent.objects.get(seq=5).row_hash}) in {anchor_file}")
    result = _verify()
    assert result.exit_code == 0 and "WARNING" not in result.stderr
    assert "anchor matched at 3 events up to seq 5" in result.stdout


@pytest.mark.django_db
@pytest.mark.embedded
def test_a_rolled_back_event_is_never_anchored(django_capture_on_commit_callbacks: Any, anchor_file: Path) -> None:
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), transaction.atomic():
        _record(1)
        raise RuntimeError("the change failed")
    assert not anchor_file.exists()


@pytest.mark.django_db
@pytest.mark.embedded
def test_the_hourly_checkpoint_task_anchors_the_head(anchor_file: Path) -> None:
    assert TASK_QUEUES[TaskName.AUDIT_ANCHOR] is Queue.HOUSEKEEPING
    assert {"task": TaskName.AUDIT_ANCHOR.value, "schedule": 3600} in settings.CELERY_BEAT_SCHEDULE.values()
    assert audit_anchor_task() == 0 and not anchor_file.exists()  # an empty trail: nothing to anchor
    events = _record(2)
    assert audit_anchor_task() == 2
    assert anchor_file.read_text().split()[:2] == ["2", events[-1].row_hash]


# ---- the anchor file itself


@pytest.mark.django_db
@pytest.mark.embedded
def test_an_anchor_line_with_a_bad_hmac_is_reported(django_capture_on_commit_callbacks: Any, anchor_file: Path) -> None:
    _record(3, django_capture_on_commit_callbacks)
    lines = anchor_file.read_text().splitlines()
    _seq, row_hash, when, mac = lines[1].split()
    # Claim a later head for seq 9 with the line's own MAC: without the key the MAC cannot be made to fit.
    forged = f"9 {row_hash} {when} {mac}"
    anchor_file.write_text("\n".join([*lines, forged]) + "\n")
    result = _verify()
    assert result.exit_code == 1
    assert "TAMPERING" in result.stderr and "anchor line 4 of" in result.stderr and "fails its HMAC" in result.stderr


@pytest.mark.django_db
@pytest.mark.embedded
def test_an_edited_anchor_line_is_reported(django_capture_on_commit_callbacks: Any, anchor_file: Path) -> None:
    _record(3, django_capture_on_commit_callbacks)
    text = anchor_file.read_text()
    anchor_file.write_text(text.replace("3 ", "2 ", 1))  # the last line now claims seq 2
    result = _verify()
    assert result.exit_code == 1 and "fails its HMAC" in result.stderr


# ---- (a) TRUNCATE by the table owner


@pytest.mark.django_db
@pytest.mark.usefixtures("postgres")
def test_truncate_by_the_table_owner_is_reported_as_tampering(django_capture_on_commit_callbacks: Any) -> None:
    _record(5, django_capture_on_commit_callbacks)
    assert _verify().exit_code == 0
    with as_table_owner() as cursor:
        cursor.execute(f"TRUNCATE {TABLE}")
    assert AuditEvent.objects.count() == 0
    result = _verify()
    assert result.exit_code == 1
    assert "TAMPERING" in result.stderr
    assert "the chain ends at seq 0 but" in result.stderr and "anchors seq 5: 5 events were removed" in result.stderr


@pytest.mark.django_db
@pytest.mark.usefixtures("postgres")
def test_the_trigger_refuses_truncate_from_the_owner_and_has_no_session_escape() -> None:
    _record(2)
    owner = _role_name("owner")
    with connection.cursor() as cursor:
        cursor.execute("SHOW session_replication_role")
        assert cursor.fetchone()[0] == "origin"  # the test database's flush bypass (audit.testing) is not on
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no ALTER TABLE or TRUNCATE with pending FK checks
        cursor.execute(f"CREATE ROLE {owner} NOLOGIN")
        cursor.execute(f"ALTER TABLE {TABLE} OWNER TO {owner}")
        cursor.execute(f"SET ROLE {owner}")
        cursor.execute("SET rfr.audit_allow_truncate = 'on'")  # the escape of the release before
        for statement in (f"TRUNCATE {TABLE}", f"DELETE FROM {TABLE}", f"UPDATE {TABLE} SET action = 'x'"):
            with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
                cursor.execute(statement)
        cursor.execute("RESET ROLE")
    assert AuditEvent.objects.count() == 2


# ---- (b) a middle row deleted, the later chain renumbered and re-hashed without the key


def _delete_and_rehash(deleted_seq: int, *, from_seq: int, mark_unkeyed: bool) -> None:
    """Delete the row at `deleted_seq`, close the gap by renumbering, and recompute prev_hash and row_hash of
    every row from `from_seq` on with plain sha256 (all an attacker without the key can do)."""
    with as_table_owner() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE seq = %s", [deleted_seq])
        later = AuditEvent.objects.filter(seq__gt=deleted_seq).order_by("seq").values_list("pk", "seq")
        for pk, seq in list(later):  # one by one, upwards: seq is unique
            cursor.execute(f"UPDATE {TABLE} SET seq = %s WHERE id = %s", [seq - 1, pk])
        rows = list(AuditEvent.objects.order_by("seq"))
        prev_hash = GENESIS_HASH
        for row in rows:
            if row.seq >= from_seq:
                row.prev_hash = prev_hash
                row.row_hash = _unkeyed_hash(prev_hash, row)
                scheme = HashScheme.SHA256 if mark_unkeyed else row.hash_scheme
                cursor.execute(
                    f"UPDATE {TABLE} SET prev_hash = %s, row_hash = %s, hash_scheme = %s WHERE id = %s",
                    [row.prev_hash, row.row_hash, scheme, row.pk],
                )
            prev_hash = row.row_hash


@pytest.mark.django_db
@pytest.mark.embedded
@pytest.mark.parametrize("mark_unkeyed", [False, True], ids=["left-keyed", "marked-unkeyed"])
def test_a_middle_row_deleted_and_the_chain_rehashed_is_reported(
    mark_unkeyed: bool, django_capture_on_commit_callbacks: Any
) -> None:
    events = _record(6, django_capture_on_commit_callbacks)
    _delete_and_rehash(3, from_seq=3, mark_unkeyed=mark_unkeyed)
    assert list(AuditEvent.objects.values_list("seq", flat=True)) == [1, 2, 3, 4, 5]  # contiguous again
    result = _verify()
    assert result.exit_code == 1
    assert f"TAMPERING: chain broken at audit event id {events[3].pk} (seq 3)" in result.stderr
    reason = "unkeyed sha256 row after keyed rows" if mark_unkeyed else "does not match row_hash under the audit key"
    assert reason in result.stderr
    assert "anchors seq 6: 1 events were removed" in result.stderr


@pytest.mark.django_db
@pytest.mark.embedded
def test_the_whole_chain_rewritten_as_unkeyed_is_caught_by_the_anchor(
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Every row re-hashed from the first, all marked as an earlier release's unkeyed rows: the chain is
    # internally consistent, and only the anchor outside the database can tell.
    events = _record(5, django_capture_on_commit_callbacks)
    _delete_and_rehash(3, from_seq=1, mark_unkeyed=True)
    result = _verify()
    assert result.exit_code == 1
    assert f"chain broken at audit event id {events[0].pk} (seq 1)" in result.stderr
    assert "differs from the hash anchored outside the database for seq 1" in result.stderr


# ---- (c) the last rows deleted


@pytest.mark.django_db
@pytest.mark.embedded
def test_the_last_rows_deleted_are_reported(django_capture_on_commit_callbacks: Any) -> None:
    _record(6, django_capture_on_commit_callbacks)
    with as_table_owner() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE seq > 4")
    result = _verify()
    assert result.exit_code == 1
    assert "the chain ends at seq 4 but" in result.stderr and "anchors seq 6: 2 events were removed" in result.stderr


@pytest.mark.django_db
@pytest.mark.embedded
def test_the_last_rows_deleted_then_new_events_appended_are_reported(
    django_capture_on_commit_callbacks: Any,
) -> None:
    _record(6, django_capture_on_commit_callbacks)
    with as_table_owner() as cursor:
        cursor.execute(f"DELETE FROM {TABLE} WHERE seq > 4")
    events = _record(3, django_capture_on_commit_callbacks)  # the application carries on from seq 5
    assert [event.seq for event in events] == [5, 6, 7]
    result = _verify()
    assert result.exit_code == 1
    assert "anchor line 7 of" in result.stderr and "records a different hash for seq 5" in result.stderr
    assert f"chain broken at audit event id {events[0].pk} (seq 5)" in result.stderr


# ---- rows of an earlier release (plain sha256) still verify


@pytest.mark.django_db
@pytest.mark.embedded
def test_unkeyed_rows_of_an_earlier_release_verify_and_keyed_rows_follow(
    django_capture_on_commit_callbacks: Any,
) -> None:
    _record(3)  # as the previous release wrote them: plain sha256, never anchored
    with as_table_owner() as cursor:
        prev_hash = GENESIS_HASH
        for row in AuditEvent.objects.order_by("seq"):
            row_hash = _unkeyed_hash(prev_hash, row)
            cursor.execute(
                f"UPDATE {TABLE} SET prev_hash = %s, row_hash = %s, hash_scheme = %s WHERE id = %s",
                [prev_hash, row_hash, HashScheme.SHA256, row.pk],
            )
            prev_hash = row_hash
    events = _record(2, django_capture_on_commit_callbacks)
    assert events[0].prev_hash == prev_hash and events[0].hash_scheme == HashScheme.HMAC_SHA256
    result = _verify()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("OK 5 events verified; 3 of them hashed without a key by an earlier release;")


# ---- the application's role (audit.dbroles)


@contextmanager
def _two_roles() -> Iterator[tuple[str, str]]:
    """An owner role owning every table of the test database and an app role given its grants by
    `database_roles_grant`, inside the test's transaction (rolled back with it)."""
    owner, app = _role_name("owner"), _role_name("app")
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # no ALTER TABLE with pending FK checks
        cursor.execute(f"CREATE ROLE {owner} NOLOGIN")
        cursor.execute(f"CREATE ROLE {app} NOLOGIN NOINHERIT")
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
        for (table,) in cursor.fetchall():
            cursor.execute(f'ALTER TABLE "{table}" OWNER TO {owner}')
        cursor.execute(f"SET ROLE {owner}")
        database_roles_grant(app_role=app)
        cursor.execute("RESET ROLE")
    yield owner, app


@pytest.mark.django_db
@pytest.mark.usefixtures("postgres")
def test_the_app_role_may_append_and_read_but_not_change_empty_or_unprotect_the_audit_table() -> None:
    user = make_user("ivy")
    _record(2)
    before = AuditEvent.objects.count()
    with _two_roles() as (_owner, app), connection.cursor() as cursor:
        out = io.StringIO()
        call_command("dbroles", "check", "--app-role", app, stdout=out)
        assert out.getvalue().startswith(f"OK: '{app}' may only read and append audit events")

        cursor.execute(f"SET ROLE {app}")
        # What the application does: append through the service, and ordinary DML elsewhere.
        event = audit_event_record(action=AuditAction.CASE_CREATED, actor=user, target_type="thing", target_id=1)
        assert event.seq == before + 1 and AuditEvent.objects.count() == before + 1
        user.first_name = "Ivy"
        user.save(update_fields=["first_name"])
        refused = {
            f"UPDATE {TABLE} SET action = 'x'": "permission denied for table",
            f"DELETE FROM {TABLE}": "permission denied for table",
            f"TRUNCATE {TABLE}": "permission denied for table",
            f"ALTER TABLE {TABLE} DISABLE TRIGGER audit_auditevent_no_truncate": "must be owner of table",
            f"ALTER TABLE {TABLE} DISABLE TRIGGER ALL": "must be owner of table",
            "SET session_replication_role = replica": "permission denied to set parameter",
        }
        for statement, message in refused.items():
            with pytest.raises(DatabaseError, match=message), transaction.atomic():
                cursor.execute(statement)
        cursor.execute("RESET ROLE")
    assert AuditEvent.objects.count() == before + 1
    result = _verify()
    assert result.exit_code == 0 and result.stdout.startswith(f"OK {before + 1} events verified")


@pytest.mark.django_db
@pytest.mark.usefixtures("postgres")
def test_check_deploy_warns_when_the_app_connects_as_a_superuser_or_owner_and_not_as_the_app_role() -> None:
    # The test suite connects as a superuser, as compose's app did before the two roles.
    (warning,) = audit_database_role_check(databases=["default"])
    assert warning.id == "audit.W001" and "is a superuser" in warning.msg
    with _two_roles() as (owner, app), connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {owner}")
        (warning,) = audit_database_role_check(databases=["default"])
        assert f"owns {TABLE}" in warning.msg
        cursor.execute(f"SET ROLE {app}")
        assert audit_database_role_check(databases=["default"]) == []
        cursor.execute("RESET ROLE")


@pytest.mark.django_db
@pytest.mark.usefixtures("postgres")
def test_dbroles_check_refuses_a_role_that_owns_the_audit_table() -> None:
    with _two_roles() as (owner, app):
        problems = database_roles_check(app_role=owner)
        assert any("owns audit_auditevent" in problem for problem in problems)
        assert any("holds TRUNCATE" in problem for problem in problems)
        with pytest.raises(CommandError, match="owns audit_auditevent"):
            call_command("dbroles", "check", "--app-role", owner, stdout=io.StringIO())
        assert database_roles_check(app_role=app) == []
    absent = _role_name("absent")
    assert database_roles_check(app_role=absent) == [
        f"there is no role {absent!r} (deploy/postgres-roles.sql creates it)"
    ]


# ---- the command line, for real: exit codes of manage.py on a committed database


def _manage_verify(anchor_file: Path) -> subprocess.CompletedProcess[str]:
    db = connection.settings_dict
    url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    if db.get("PASSWORD"):
        url = url.replace("@", f":{db['PASSWORD']}@", 1)
    env = {**os.environ, "DATABASE_URL": url, "RFR_AUDIT_ANCHOR_FILE": str(anchor_file), "RFR_LOG_LEVEL": "WARNING"}
    if settings.RFR_AUDIT_KEY:
        env["RFR_AUDIT_KEY"] = settings.RFR_AUDIT_KEY
    else:
        env["RFR_AUDIT_KEY_FILE"] = str(settings.RFR_AUDIT_KEY_FILE)
    return subprocess.run(
        [sys.executable, "manage.py", "audit", "verify"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("postgres")
def test_manage_py_audit_verify_exits_0_then_1_after_a_committed_truncate(anchor_file: Path) -> None:
    events = _record(3)  # autocommit: each event commits and anchors itself
    assert len(anchor_file.read_text().splitlines()) == 3
    clean = _manage_verify(anchor_file)
    assert clean.returncode == 0, clean.stderr
    assert clean.stdout.strip().endswith(f"head hash {events[-1].row_hash}")
    assert clean.stdout.startswith("OK 3 events verified")

    with transaction.atomic(), as_table_owner() as cursor:
        cursor.execute(f"TRUNCATE {TABLE}")
    tampered = _manage_verify(anchor_file)
    assert tampered.returncode == 1
    assert "TAMPERING" in tampered.stderr and "anchors seq 3: 3 events were removed" in tampered.stderr


# ---- the key: outside the database, required of a database server


def _settings_load(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RFR_AUDIT_KEY") and k != "PYTEST_VERSION"}
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); print('started')"],
        cwd=REPO,
        env={**base, "DJANGO_SETTINGS_MODULE": "rfr.settings", **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.embedded
def test_a_database_server_refuses_to_start_without_an_audit_key(tmp_path: Path) -> None:
    server = {"DATABASE_URL": "postgres://rfr_app@127.0.0.1:5432/rfr", "RFR_DATA_DIR": str(tmp_path)}
    refused = _settings_load(**server)
    assert refused.returncode != 0
    assert "RFR_AUDIT_KEY or RFR_AUDIT_KEY_FILE must be set when DATABASE_URL is set" in refused.stderr
    short = _settings_load(**server, RFR_AUDIT_KEY="too-short")
    assert short.returncode != 0 and "at least 32 characters" in short.stderr
    missing_file = _settings_load(**server, RFR_AUDIT_KEY_FILE=str(tmp_path / "nowhere.key"))
    assert missing_file.returncode != 0 and "does not exist" in missing_file.stderr
    assert not (tmp_path / "audit.key").exists()  # never generated for a database server
    started = _settings_load(**server, RFR_AUDIT_KEY="0123456789abcdef" * 4)
    assert started.returncode == 0 and "started" in started.stdout, started.stderr


@pytest.mark.embedded
def test_the_embedded_default_generates_its_key_once_readable_by_its_owner_only(tmp_path: Path, settings: Any) -> None:
    settings.RFR_AUDIT_KEY = ""
    settings.RFR_AUDIT_KEY_FILE = tmp_path / "var" / "audit.key"
    key = audit_key()
    assert len(key) == 64 and (tmp_path / "var" / "audit.key").stat().st_mode & 0o777 == 0o600
    assert audit_key() == key == (tmp_path / "var" / "audit.key").read_bytes().strip()
    settings.RFR_AUDIT_KEY = "k" * 40
    assert audit_key() == b"k" * 40


@pytest.mark.django_db
@pytest.mark.embedded
def test_anchor_lines_also_go_to_syslog_when_configured(django_capture_on_commit_callbacks: Any, settings: Any) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as collector:
        collector.bind(("127.0.0.1", 0))
        collector.settimeout(10)
        settings.RFR_AUDIT_ANCHOR_SYSLOG = f"127.0.0.1:{collector.getsockname()[1]}"
        (event,) = _record(1, django_capture_on_commit_callbacks)
        message = collector.recv(4096).decode()
    assert f"rfr-audit-anchor 1 {event.row_hash} " in message
    assert Path(settings.RFR_AUDIT_ANCHOR_FILE).read_text().startswith(f"1 {event.row_hash} ")
