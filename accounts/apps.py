from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts, roles and sign-in"

    def ready(self) -> None:
        from django.db.models.signals import post_migrate

        from accounts import signals  # noqa: F401  (connects the login/logout audit receivers)
        from accounts.roles import role_model_permissions_sync

        # Every app's post_migrate, not only ours: other apps' permissions exist only after their own migrate.
        post_migrate.connect(role_model_permissions_sync, dispatch_uid="rfr-role-model-permissions")
