"""Test-suite support: emptying the throwaway test database although the audit table refuses TRUNCATE.

Django empties every table between transactional tests with one TRUNCATE, which the append-only trigger
refuses, and the trigger has no escape a session can switch on (migration audit/0004). So on the test
databases alone (Django names them test_<name>; anything else is refused) the flush runs with
`SET LOCAL session_replication_role = replica`, under which ordinary triggers do not fire. PostgreSQL lets
only a superuser set that, and a superuser can drop the trigger anyway, so this opens nothing to the
application: its role is not a superuser (docs/audit-and-permissions.md, "Database roles"). The setting lasts
for the flush's own transaction; the tests run with the trigger in force, and tests/test_audit.py and
tests/test_chain_tamper.py check that it refuses UPDATE, DELETE and TRUNCATE.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

_PATCHED = "_rfr_flush_past_audit_trigger"


def _is_test_database(connection: BaseDatabaseWrapper) -> bool:
    return str(connection.settings_dict["NAME"]).startswith("test_")


def audit_flush_allow_on_test_databases() -> None:
    """Make Django's flush pass the audit trigger, on PostgreSQL test databases only."""
    for connection in connections.all():
        if connection.vendor != "postgresql":
            continue
        if not _is_test_database(connection):
            raise RuntimeError(f"Refusing to relax the audit trigger on {connection.settings_dict['NAME']!r}.")
        operations = type(connection.ops)
        if getattr(operations, _PATCHED, False):
            continue
        original = operations.execute_sql_flush

        def execute_sql_flush(self: Any, sql_list: list[str], _original: Any = original) -> None:
            if _is_test_database(self.connection):
                # First and last in the flush's transaction: nothing else runs without the trigger.
                sql_list = [
                    "SET LOCAL session_replication_role = replica",
                    *sql_list,
                    "SET LOCAL session_replication_role = origin",
                ]
            _original(self, sql_list)

        operations.execute_sql_flush = execute_sql_flush  # type: ignore[method-assign,assignment]
        setattr(operations, _PATCHED, True)
