"""`{% main_nav %}`: the site's main navigation for the signed-in user, by role (accounts.roles)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template
from django.urls import reverse

from accounts.roles import SUPERVISOR, user_has_role, user_is_admin
from audit.selectors import audit_view_allowed

register = template.Library()


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    current: str  # the aria-current value: "page" (this page), "true" (a page inside the section), or ""


def _item(label: str, url: str, path: str) -> NavItem:
    if path == url:
        current = "page"
    elif url != "/" and path.startswith(url):
        current = "true"
    else:
        current = ""
    return NavItem(label=label, url=url, current=current)


def nav_items_for(*, user: Any, path: str) -> list[NavItem]:
    """The links the user may follow: everyone signed in gets cases and the API docs; supervisors and admins
    the audit trail and the accuracy and fairness evidence; admins rfr's own gallery pages and Manage pages,
    and the admin site."""
    if not user.is_authenticated:
        return []
    items = [_item("Cases", reverse("cases:list"), path)]
    if audit_view_allowed(user=user):
        items.append(_item("Audit", reverse("audit-list"), path))
    if user_is_admin(user) or user_has_role(user, SUPERVISOR):
        items.append(_item("Accuracy", reverse("search:manage-accuracy"), path))  # evidence for the equality duty
    if user_is_admin(user):
        items.append(_item("Galleries", reverse("search:manage-galleries"), path))  # rfr's own gallery pages
        items.append(_item("Manage", reverse("manage:index"), path))  # rfr's audited admin pages
    if user.is_staff and user_is_admin(user):
        items.append(_item("Admin", reverse("admin:index"), path))  # the Django admin: read-only but for superusers
    items.append(_item("API docs", reverse("api-docs"), path))
    return items


@register.inclusion_tag("accounts/_main_nav.html", takes_context=True)
def main_nav(context: template.Context) -> dict[str, Any]:
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    path = getattr(request, "path", "")
    return {"items": nav_items_for(user=user, path=path) if user is not None else [], "user": user}
