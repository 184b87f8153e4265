"""Keyed row hashes, and no escape from the TRUNCATE refusal.

- `hash_scheme` records how each row's hash was computed. Every row already in the table was hashed with plain
  sha256 and is marked so (the column is added with that default); rows written from now on are keyed with
  HMAC-SHA256 under the audit key (audit.keys), the model's default.
- On PostgreSQL the trigger function of migration 0002 is replaced by one without the
  `rfr.audit_allow_truncate` escape: UPDATE, DELETE and TRUNCATE are refused whatever any session sets. The
  test suite empties its throwaway database another way (audit.testing).
"""

from django.db import migrations, models

FUNCTION_SQL = """
CREATE OR REPLACE FUNCTION audit_auditevent_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""
# Migration 0002's function, restored if this migration is reversed.
PREVIOUS_FUNCTION_SQL = """
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


def replace_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FUNCTION_SQL, params=None)


def restore_function(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(PREVIOUS_FUNCTION_SQL, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("audit", "0003_view_all_permission"),
    ]

    operations = [
        # Existing rows: plain sha256 (the default applies to them only while the column is added).
        migrations.AddField(
            model_name="auditevent",
            name="hash_scheme",
            field=models.CharField(
                choices=[("sha256", "sha256 (before keyed hashing)"), ("hmac-sha256", "HMAC-SHA256 under the audit key")],
                default="sha256",
                max_length=16,
            ),
            preserve_default=False,
        ),
        # New rows: keyed.
        migrations.AlterField(
            model_name="auditevent",
            name="hash_scheme",
            field=models.CharField(
                choices=[("sha256", "sha256 (before keyed hashing)"), ("hmac-sha256", "HMAC-SHA256 under the audit key")],
                default="hmac-sha256",
                max_length=16,
            ),
        ),
        migrations.RunPython(replace_function, restore_function, elidable=False),
    ]
