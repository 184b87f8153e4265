"""Test-suite support for the PostgreSQL append-only trigger.

Django empties every table between transactional tests with one TRUNCATE, which the trigger refuses. The test
database (never a real one: Django names it test_<name> and drops it afterwards) is given the database-level
setting `rfr.audit_allow_truncate = on`, the trigger's only escape, which applies to TRUNCATE alone.
"""

from __future__ import annotations

from django.db import connections


def audit_truncate_allow_on_test_databases() -> None:
    for connection in connections.all():
        if connection.vendor != "postgresql":
            continue
        name = connection.settings_dict["NAME"]
        if not str(name).startswith("test_"):
            raise RuntimeError(f"Refusing to relax the audit trigger on {name!r}: not a test database.")
        with connection.cursor() as cursor:
            quoted = connection.ops.quote_name(name)
            cursor.execute(f"ALTER DATABASE {quoted} SET rfr.audit_allow_truncate = 'on'")
            cursor.execute("SET rfr.audit_allow_truncate = 'on'")  # this session began before the ALTER
