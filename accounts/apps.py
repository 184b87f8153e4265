from django.apps import AppConfig
from django.db.models import Q
from django.db.models.signals import post_migrate


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts, roles and sign-in"

    def ready(self) -> None:
        # Django's one hook for wiring an app once every model is loaded: these modules import models, so they
        # cannot be imported at the top of apps.py (which Django loads before the models).
        from accounts import signals  # noqa: F401  (connects the login/logout audit receivers)
        from accounts.roles import role_model_permissions_sync, users_supervised_by
        from audit.selectors import audit_scope_register

        # Every app's post_migrate, not only ours: other apps' permissions exist only after their own migrate.
        post_migrate.connect(role_model_permissions_sync, dispatch_uid="rfr-role-model-permissions")
        # A supervisor reads the audit events of the members of the teams they supervise.
        audit_scope_register("team-members", lambda user: Q(actor__in=users_supervised_by(user).values("pk")))
