from __future__ import annotations

from typing import Any

from django import forms


class AuditFilterForm(forms.Form):
    user = forms.CharField(label="Username", required=False, max_length=150)
    case = forms.IntegerField(label="Case number", required=False, min_value=1)
    action = forms.CharField(
        label="Action",
        required=False,
        max_length=64,
        help_text='Exact code, or a prefix ending in "." (e.g. case.); the field suggests every code.',
        widget=forms.TextInput(attrs={"list": "audit-actions", "autocomplete": "off"}),
    )
    date_from = forms.DateField(label="From (date)", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label="To (date)", required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def filters(self) -> dict[str, Any]:
        data = self.cleaned_data if self.is_valid() else {}
        return {
            "username": (data.get("user") or "").strip(),
            "case_id": data.get("case"),
            "action": (data.get("action") or "").strip(),
            "date_from": data.get("date_from"),
            "date_to": data.get("date_to"),
        }
