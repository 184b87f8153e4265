"""Append-only enforcement in the database.

On PostgreSQL a trigger refuses every UPDATE and DELETE on audit_auditevent, and TRUNCATE too, whatever client
issues them. TRUNCATE has one escape: a session (or database) setting `rfr.audit_allow_truncate = on`, which
the test suite sets on its own throwaway test database so Django can flush tables between transactional tests
(see audit.testing). UPDATE and DELETE have no escape short of `ALTER TABLE ... DISABLE TRIGGER`, which needs
the table owner; what gets past that is caught by the hash chain (`manage.py audit verify`).

Other databases (SQLite, the embedded default) rely on the application refusing changes (audit.models).
"""

from django.db import migrations

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION audit_auditevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' AND coalesce(current_setting('rfr.audit_allow_truncate', true), '') = 'on' THEN
        RETURN NULL;
    END IF;
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""
TRIGGERS_SQL = [
    "CREATE TRIGGER audit_auditevent_append_only BEFORE UPDATE OR DELETE ON audit_auditevent "
    "FOR EACH ROW EXECUTE FUNCTION audit_auditevent_refuse_change();",
    "CREATE TRIGGER audit_auditevent_no_truncate BEFORE TRUNCATE ON audit_auditevent "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_auditevent_refuse_change();",
]
DROP_SQL = [
    "DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;",
    "DROP TRIGGER IF EXISTS audit_auditevent_append_only ON audit_auditevent;",
    "DROP FUNCTION IF EXISTS audit_auditevent_refuse_change();",
]


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(FUNCTION_SQL, params=None)
    for statement in TRIGGERS_SQL:
        schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for statement in DROP_SQL:
        schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0001_initial"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="auditevent",
            options={"default_permissions": ("view",), "ordering": ["seq"]},
        ),
        migrations.RunPython(create_triggers, drop_triggers, elidable=False),
    ]
