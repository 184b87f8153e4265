from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "audit"
    verbose_name = "Audit trail"

    def ready(self) -> None:
        # Registers the anchor task's name in every process (rfr.queues: tasks are queued by name).
        from audit import tasks  # noqa: F401
