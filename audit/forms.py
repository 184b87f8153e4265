"""The filter of `/audit/` and its CSV export: username, case reference, action and date range."""

from __future__ import annotations

from typing import Any

from django import forms

from audit.actions import AuditAction

# Each action's prefix ("case." of "case.created") in words, for the groups of the action list.
ACTION_GROUP_LABELS = {
    "auth": "Sign-in",
    "user": "Users",
    "role": "Roles",
    "group": "Groups",
    "permission": "Permissions",
    "grant": "Grants",
    "team": "Teams",
    "case": "Cases",
    "probe": "Probes",
    "search": "Searches",
    "candidate": "Candidates",
    "gallery": "Galleries",
    "modelpack": "Model packs",
    "accuracy": "Accuracy",
    "threshold": "Thresholds",
    "evaluation": "Evaluations",
    "cohort": "Score cohorts",
    "storage": "Storage",
    "audit": "Audit trail",
}


def action_filter_choices() -> list[tuple[str, Any]]:
    """Every action of the closed vocabulary, grouped by prefix; each group offers "all of them" first."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for action in AuditAction:
        prefix = action.value.split(".", 1)[0]
        groups.setdefault(prefix, [(f"{prefix}.", f"All {ACTION_GROUP_LABELS.get(prefix, prefix).lower()}")])
        groups[prefix].append((action.value, action.value))
    return [("", "Any action")] + [(ACTION_GROUP_LABELS.get(p, p), options) for p, options in groups.items()]


class AuditFilterForm(forms.Form):
    user = forms.CharField(label="Username", required=False, max_length=150)
    case = forms.CharField(
        label="Case reference",
        required=False,
        max_length=64,
        help_text="A case you are on; #number for any case by its number.",
    )
    action = forms.ChoiceField(label="Action", required=False, choices=action_filter_choices)
    date_from = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and end < start:
            self.add_error("date_to", "The end date is before the start date.")
        return data

    def filters(self) -> dict[str, Any]:
        """The valid filters as given: `case_reference` is resolved to case ids by the view, for its reader."""
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "username": (data.get("user") or "").strip(),
            "case_reference": (data.get("case") or "").strip(),
            "action": (data.get("action") or "").strip(),
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
        }
