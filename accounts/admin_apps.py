"""Django's admin, with rfr's site (accounts.admin_site.RfrAdminSite) as `admin.site`: listed in INSTALLED_APPS
in place of "django.contrib.admin". The site is named as a string so that it is imported only once the models
are loaded."""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class RfrAdminConfig(AdminConfig):
    default_site = "accounts.admin_site.RfrAdminSite"
