from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # Registers the anchor task's name in every process (rfr.queues: tasks are queued by name), and the
        # deployment check of the database role.
        from audit import checks, tasks  # noqa: F401
