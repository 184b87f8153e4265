"""A deployment check (`manage.py check --deploy --database default`): the application's database role must
not be able to undo the audit table's protection, by owning it or being a superuser (audit.dbroles)."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register
from django.db import connections

from audit.dbroles import AUDIT_TABLE


@register(Tags.database, deploy=True)
def audit_database_role_check(app_configs: Any = None, databases: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if not databases or "default" not in databases:
        return []
    connection = connections["default"]
    if connection.vendor != "postgresql":
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_user, r.rolsuper, pg_has_role(current_user, c.relowner, 'MEMBER') "
            "FROM pg_roles r, pg_class c WHERE r.rolname = current_user AND c.oid = to_regclass(%s)",
            [AUDIT_TABLE],
        )
        row = cursor.fetchone()
    if row is None:  # not migrated yet
        return []
    role, superuser, owner = row
    if not (superuser or owner):
        return []
    what = "is a superuser" if superuser else f"owns {AUDIT_TABLE}"
    return [
        Warning(
            f"The database role {role!r} {what}, so it can disable the audit table's append-only trigger.",
            hint="Run web, workers and beat as the app role and only migrate as the owner "
            "(manage.py dbroles; docs/audit-and-permissions.md, 'Database roles').",
            id="audit.W001",
        )
    ]
