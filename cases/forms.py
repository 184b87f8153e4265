from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth import get_user_model

from accounts.models import Team
from cases.models import Case
from rfr.limits import text_limit


class CaseCreateForm(forms.Form):
    reference = forms.CharField(max_length=64, help_text="Crime or incident reference.")
    title = forms.CharField(max_length=200)
    purpose = forms.ChoiceField(choices=Case.Purpose.choices)
    offence_category = forms.CharField(max_length=120, required=False)
    legal_basis = forms.CharField(
        max_length=text_limit("legal_basis"),
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="The lawful basis for searching images in this case.",
    )
    team = forms.ModelChoiceField(
        queryset=Team.objects.none(),
        required=False,
        help_text="Its supervisors will see the case. Left empty, your only team is used.",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = Team.objects.filter(members=user)  # type: ignore[attr-defined]


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, label="Username to add")

    def clean_username(self) -> Any:
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError("No active user has that username.")
        return user


class CaseCloseForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 2}), required=False, max_length=text_limit("case_close_reason")
    )


class CaseCloseConfirmForm(forms.Form):
    """Closing a case is confirmed on its own page, with the reason (recorded in the audit trail)."""

    reason = forms.CharField(
        label="Reason for closing",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=text_limit("case_close_reason"),
        help_text="Recorded with the closing; a supervisor reopening the case will see it.",
    )


class CaseReopenForm(forms.Form):
    reason = forms.CharField(
        label="Reason for reopening",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=text_limit("case_reopen_reason"),
        help_text="Recorded with the reopening.",
    )


class CaseNoteForm(forms.Form):
    text = forms.CharField(label="Note", widget=forms.Textarea(attrs={"rows": 3}), max_length=text_limit("case_note"))
