"""The two PostgreSQL roles: an owner that runs migrations, and the application's role that may only append.

The owner role owns every table and runs `manage.py migrate`. The application (web, workers, beat) connects
as the app role, which owns nothing: on `audit_auditevent` it may SELECT and INSERT only, so it can neither
UPDATE, DELETE nor TRUNCATE audit rows, nor `ALTER TABLE ... DISABLE TRIGGER` (that needs the owner); on every
other table it has ordinary SELECT, INSERT, UPDATE and DELETE. deploy/postgres-roles.sql creates the roles
(once, as a superuser); `manage.py dbroles grant`, run as the owner after every `migrate`, grants these
privileges, including default privileges for the tables future migrations create. `manage.py dbroles check`
says whether a role is set up so. See docs/audit-and-permissions.md, "Database roles".
"""

from __future__ import annotations

import re

from django.db import connection

from audit.models import AuditEvent

AUDIT_TABLE = AuditEvent._meta.db_table
TRIGGERS = ("audit_auditevent_append_only", "audit_auditevent_no_truncate")
APP_TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
AUDIT_TABLE_PRIVILEGES = ("SELECT", "INSERT")
_ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _identifier(name: str) -> str:
    if not _ROLE_NAME.match(name):
        raise ValueError(f"{name!r} is not a plain PostgreSQL role name (lower-case letters, digits, _).")
    return f'"{name}"'


def database_roles_grant_sql(*, app_role: str, schema: str = "public") -> list[str]:
    """The statements the owner runs to give `app_role` its privileges (idempotent)."""
    app, schema_name, audit = _identifier(app_role), _identifier(schema), _identifier(AUDIT_TABLE)
    dml = ", ".join(APP_TABLE_PRIVILEGES)
    return [
        f"GRANT USAGE ON SCHEMA {schema_name} TO {app}",
        f"GRANT {dml} ON ALL TABLES IN SCHEMA {schema_name} TO {app}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema_name} TO {app}",
        # The audit table: append and read, nothing else (no UPDATE, DELETE, TRUNCATE, TRIGGER, REFERENCES).
        f"REVOKE ALL ON TABLE {schema_name}.{audit} FROM PUBLIC",
        f"REVOKE ALL ON TABLE {schema_name}.{audit} FROM {app}",
        f"GRANT {', '.join(AUDIT_TABLE_PRIVILEGES)} ON TABLE {schema_name}.{audit} TO {app}",
        # Tables and sequences that later migrations create (as the owner) get the ordinary privileges.
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_name} GRANT {dml} ON TABLES TO {app}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema_name} GRANT USAGE, SELECT ON SEQUENCES TO {app}",
    ]


def _current_schema() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_schema()")
        return str(cursor.fetchone()[0])


def database_roles_grant(*, app_role: str) -> list[str]:
    """Run the grants as the connected role, which must own the audit table; returns the statements run."""
    if connection.vendor != "postgresql":
        raise RuntimeError("Database roles apply to PostgreSQL only.")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_get_userbyid(relowner), current_user FROM pg_class WHERE oid = %s::regclass", [AUDIT_TABLE]
        )
        owner, current = cursor.fetchone()
        if owner != current:
            raise RuntimeError(
                f"Connected as {current!r}, but {AUDIT_TABLE} is owned by {owner!r}: run `dbroles grant` as the "
                "owner role, the one that runs `migrate`."
            )
        if owner == app_role:
            raise RuntimeError(f"{app_role!r} owns {AUDIT_TABLE}: the app role must not be the owner.")
        statements = database_roles_grant_sql(app_role=app_role, schema=_current_schema())
        for statement in statements:
            cursor.execute(statement)
    return statements


def database_roles_check(*, app_role: str) -> list[str]:
    """What is wrong with `app_role` as the application's role; an empty list if nothing."""
    if connection.vendor != "postgresql":
        return []
    problems: list[str] = []
    with connection.cursor() as cursor:
        cursor.execute("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = %s", [app_role])
        row = cursor.fetchone()
        if row is None:
            return [f"there is no role {app_role!r} (deploy/postgres-roles.sql creates it)"]
        if row[0]:
            problems.append(f"{app_role!r} is a superuser, which can do anything to the audit table")
        cursor.execute(
            "SELECT pg_get_userbyid(relowner), pg_has_role(%s, relowner, 'MEMBER') FROM pg_class "
            "WHERE oid = %s::regclass",
            [app_role, AUDIT_TABLE],
        )
        owner, member = cursor.fetchone()
        if member:
            problems.append(f"{app_role!r} owns {AUDIT_TABLE} (or is a member of its owner {owner!r})")
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"):
            cursor.execute("SELECT has_table_privilege(%s, %s, %s)", [app_role, AUDIT_TABLE, privilege])
            held = cursor.fetchone()[0]
            if held != (privilege in AUDIT_TABLE_PRIVILEGES):
                problems.append(f"{app_role!r} {'holds' if held else 'lacks'} {privilege} on {AUDIT_TABLE}")
        cursor.execute(
            "SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = %s::regclass AND NOT tgisinternal",
            [AUDIT_TABLE],
        )
        triggers = dict(cursor.fetchall())
        for trigger in TRIGGERS:
            if triggers.get(trigger) not in ("O", "A"):
                problems.append(f"the trigger {trigger} on {AUDIT_TABLE} is missing or disabled")
        # By oid: a table name on its own may not resolve for the role being checked.
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname <> %s "
            "AND NOT (has_table_privilege(%s, c.oid, 'SELECT') AND has_table_privilege(%s, c.oid, 'INSERT') "
            "AND has_table_privilege(%s, c.oid, 'UPDATE') AND has_table_privilege(%s, c.oid, 'DELETE')) "
            "ORDER BY c.relname",
            [AUDIT_TABLE, app_role, app_role, app_role, app_role],
        )
        missing = [name for (name,) in cursor.fetchall()]
        if missing:
            problems.append(f"{app_role!r} lacks SELECT/INSERT/UPDATE/DELETE on {len(missing)} tables: {missing[:5]}")
    return problems
