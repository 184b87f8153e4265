"""rfr's own admin pages, for admins (accounts.roles.user_is_admin): users and roles, teams and their supervisors.

Everything here goes through the audited services of accounts.services, so every change is in the audit trail
with its actor; the services refuse changes to one's own grants and never make a superuser. Anyone who is not
an admin gets 403. The landing page /manage/ lists the sections, including those other apps add under /manage/
(galleries, model packs) when their pages are installed.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.forms import DeactivateForm, PasswordResetForm, RoleForm, TeamCreateForm, TeamPersonForm, UserCreateForm
from accounts.models import ApiToken, Team
from accounts.otp import user_totp_device
from accounts.roles import user_is_admin
from accounts.selectors import teams_for_management, user_roles, users_for_management
from accounts.services import (
    api_tokens_revoke,
    team_create,
    team_member_add,
    team_member_remove,
    team_supervisor_add,
    team_supervisor_remove,
    totp_devices_remove,
    user_create,
    user_deactivate,
    user_password_set,
    user_reactivate,
    user_role_grant,
    user_role_revoke,
)
from accounts.tokens import api_tokens_live_for
from rfr.error_handling import error_return_to
from rfr.errors import ApplicationError, InvalidInput, NotFound

# Sections other apps may add under /manage/: (URL name, title, what it is for). Listed only if installed.
MANAGE_SECTIONS: list[tuple[str, str, str]] = [
    ("manage:users", "Users and roles", "Create accounts, grant and take away roles, disable, reset passwords."),
    ("manage:teams", "Teams", "Create teams; add and remove members and supervisors."),
    ("search:manage-galleries", "Galleries", "Enrol images in bulk, remove subjects, retention."),
    ("search:manage-modelpacks", "Model packs", "List, verify and activate model packs; re-embedding."),
    ("search:manage-thresholds", "Thresholds", "Where the accuracy work will set search thresholds (placeholder)."),
]


def _require_admin(request: HttpRequest) -> Any:
    if not user_is_admin(request.user):
        raise PermissionDenied("Only admins manage users and teams.")
    return request.user


def manage_sections() -> list[dict[str, str]]:
    sections = []
    for url_name, title, text in MANAGE_SECTIONS:
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue  # that app's pages are not installed (yet)
        sections.append({"url": url, "title": title, "text": text})
    return sections


@login_required
@require_GET
def manage_index(request: HttpRequest) -> HttpResponse:
    _require_admin(request)
    return render(request, "accounts/manage/index.html", {"sections": manage_sections()})


# --- Users -----------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def user_list(request: HttpRequest) -> HttpResponse:
    admin = _require_admin(request)
    form = UserCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                user = user_create(
                    username=data["username"],
                    password=data["password1"],
                    first_name=data["first_name"],
                    last_name=data["last_name"],
                    email=data["email"],
                    role=data["role"],
                    created_by=admin,
                    request=request,
                    validate=True,
                    require_change=True,
                )
                if data["role"]:
                    user_role_grant(user=user, role=data["role"], granted_by=admin, request=request)
            except ApplicationError as error:
                _form_errors(form, error)
            else:
                messages.success(request, f"Created {user.get_username()}.")
                return redirect("manage:user", user_id=user.pk)
        status = 400
    query = request.GET.get("q", "")
    page = Paginator(users_for_management(query=query), 50).get_page(request.GET.get("page"))
    rows = [{"user": user, "roles": user_roles(user)} for user in page.object_list]
    return render(
        request, "accounts/manage/users.html", {"form": form, "rows": rows, "page": page, "q": query}, status=status
    )


def _form_errors(form: Any, error: ApplicationError) -> None:
    """A service's refusal, shown on the form: on its fields where it names them, else at the top."""
    if error.fields:
        for name, texts in error.fields.items():
            form.add_error(name if name in form.fields else None, " ".join(texts))
    else:
        form.add_error(None, error.message)


def _user_or_404(user_id: int) -> Any:
    return get_object_or_404(get_user_model(), pk=user_id)


@login_required
@require_GET
def user_detail(request: HttpRequest, user_id: int) -> HttpResponse:
    admin = _require_admin(request)
    user = _user_or_404(user_id)
    return render(
        request,
        "accounts/manage/user.html",
        {
            "person": user,
            "is_self": user.pk == admin.pk,
            "roles": user_roles(user),
            "role_form": RoleForm(),
            "deactivate_form": DeactivateForm(),
            "password_form": PasswordResetForm(),
            "teams": list(user.teams.order_by("name")),
            "supervised": list(user.supervised_teams.order_by("name")),
            "live_tokens": api_tokens_live_for(user).count(),
            "all_tokens": ApiToken.objects.filter(user_id=user.pk).count(),
            "has_totp": user_totp_device(user) is not None,
        },
    )


@login_required
@require_POST
@error_return_to("manage:user", "user_id")
def user_action(request: HttpRequest, user_id: int, action: str) -> HttpResponse:
    """One change to an account: grant_role, revoke_role, deactivate, reactivate, reset_password,
    revoke_tokens, remove_totp. Refusals (e.g. a change to one's own account) come back as page messages."""
    admin = _require_admin(request)
    user = _user_or_404(user_id)
    name = user.get_username()
    if action in ("grant_role", "revoke_role"):
        form: Any = RoleForm(request.POST)
        if not form.is_valid():
            raise InvalidInput("unknown_role", "Choose a role.")
        role = form.cleaned_data["role"]
        if action == "grant_role":
            user_role_grant(user=user, role=role, granted_by=admin, request=request)
            messages.success(request, f"Granted {role} to {name}.")
        else:
            user_role_revoke(user=user, role=role, revoked_by=admin, request=request)
            messages.success(request, f"Took the {role} role from {name}.")
    elif action == "deactivate":
        form = DeactivateForm(request.POST)
        reason = form.cleaned_data["reason"] if form.is_valid() else ""
        user_deactivate(user=user, deactivated_by=admin, reason=reason, request=request)
        messages.success(request, f"Deactivated {name}; their API tokens were revoked.")
    elif action == "reactivate":
        user_reactivate(user=user, reactivated_by=admin, request=request)
        messages.success(request, f"Reactivated {name}.")
    elif action == "reset_password":
        form = PasswordResetForm(request.POST)
        if not form.is_valid():
            texts = [str(text) for errors in form.errors.values() for text in errors]
            raise InvalidInput("invalid_password", " ".join(texts) or "Enter the new password twice.")
        user_password_set(
            user=user,
            password=form.cleaned_data["password1"],
            set_by=admin,
            request=request,
            validate=True,
            require_change=True,
        )
        messages.success(
            request,
            f"Set a new password for {name}; their API tokens were revoked, and they must choose their own password "
            "when they next sign in.",
        )
    elif action == "revoke_tokens":
        revoked = api_tokens_revoke(user=user, revoked_by=admin, reason="revoked_by_admin", request=request)
        messages.success(request, f"Revoked {revoked} API token{'s' if revoked != 1 else ''} of {name}.")
    elif action == "remove_totp":
        totp_devices_remove(user=user, removed_by=admin, request=request)
        messages.success(request, f"Removed the authenticator app of {name}; they set up a new one at next sign-in.")
    else:
        raise NotFound("unknown_action", "No such change.")
    return redirect("manage:user", user_id=user.pk)


# --- Teams -----------------------------------------------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
def team_list(request: HttpRequest) -> HttpResponse:
    admin = _require_admin(request)
    form = TeamCreateForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            name = form.cleaned_data["name"].strip()
            if Team.objects.filter(name__iexact=name).exists():
                form.add_error("name", f"There is already a team called {name}.")
            else:
                try:
                    team = team_create(name=name, created_by=admin, request=request)
                except ApplicationError as error:
                    _form_errors(form, error)
                else:
                    messages.success(request, f"Created the team {team.name}.")
                    return redirect("manage:team", team_id=team.pk)
        status = 400
    return render(request, "accounts/manage/teams.html", {"form": form, "teams": teams_for_management()}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@error_return_to("manage:team", "team_id")
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    admin = _require_admin(request)
    team = get_object_or_404(Team, pk=team_id)
    if request.method == "POST":
        form = TeamPersonForm(request.POST)
        if not form.is_valid():
            raise InvalidInput("invalid_person", "Give a username and whether as member or supervisor.")
        user = get_user_model().objects.filter(username__iexact=form.cleaned_data["username"].strip()).first()
        if user is None:
            message = f"No user is called {form.cleaned_data['username']}."
            raise NotFound("unknown_user", message)
        relation, remove = form.cleaned_data["relation"], "remove" in request.POST
        changes: dict[tuple[str, bool], Any] = {
            ("members", False): team_member_add,
            ("members", True): team_member_remove,
            ("supervisors", False): team_supervisor_add,
            ("supervisors", True): team_supervisor_remove,
        }
        change = changes[(relation, remove)]
        by_key = "removed_by" if remove else "added_by"
        change(team=team, user=user, request=request, **{by_key: admin})
        role = "member" if relation == "members" else "supervisor"
        done = (
            f"Removed {user.get_username()} as a {role} of" if remove else f"Added {user.get_username()} as a {role} of"
        )
        messages.success(request, f"{done} {team.name}.")
        return redirect("manage:team", team_id=team.pk)
    return render(
        request,
        "accounts/manage/team.html",
        {
            "team": team,
            "members": list(team.members.order_by("username")),
            "supervisors": list(team.supervisors.order_by("username")),
            "form": TeamPersonForm(),
            "admin_pk": admin.pk,
        },
    )
