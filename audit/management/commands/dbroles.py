"""`manage.py dbroles sql|grant|check --app-role NAME`: the application's PostgreSQL role (audit.dbroles).

- `sql` prints the grants, for review or to run by hand;
- `grant` runs them; connect as the owner role (the one that runs `migrate`), after every `migrate`;
- `check` exits 1, listing what is wrong, unless NAME owns nothing, may only SELECT and INSERT audit rows,
  and has ordinary DML on every other table.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.dbroles import database_roles_check, database_roles_grant, database_roles_grant_sql


class Command(BaseCommand):
    help = "Grants for the application's PostgreSQL role, which must not own the audit table."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["sql", "grant", "check"])
        parser.add_argument("--app-role", default="rfr_app", help="the role web and workers connect as")

    def handle(self, *args: Any, **options: Any) -> None:
        app_role = options["app_role"]
        try:
            if options["action"] == "sql":
                for statement in database_roles_grant_sql(app_role=app_role):
                    self.stdout.write(statement + ";")
            elif options["action"] == "grant":
                statements = database_roles_grant(app_role=app_role)
                self.stdout.write(f"Granted {app_role!r} its privileges ({len(statements)} statements).")
            else:
                problems = database_roles_check(app_role=app_role)
                if problems:
                    raise CommandError("; ".join(problems))
                self.stdout.write(f"OK: {app_role!r} may only read and append audit events, and owns no table.")
        except (ValueError, RuntimeError) as error:
            raise CommandError(str(error)) from error
