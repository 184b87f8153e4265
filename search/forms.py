"""Forms of rfr's own gallery and model-pack pages (search.views); they check shape, services check rules."""

from __future__ import annotations

from django import forms

from search.models import Gallery

REASON_HELP = "Recorded in the audit trail with your name, e.g. the deletion request's reference."


class GalleryCreateForm(forms.Form):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=Gallery.Kind.choices)
    provenance = forms.CharField(
        label="Provenance and legal basis",
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=4000,
        help_text="Where the images come from and under what authority they are held.",
    )
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), max_length=4000, required=False)
    retention_days = forms.IntegerField(
        label="Retention (days)",
        min_value=1,
        max_value=36500,
        required=False,
        help_text="Images older than this are purged daily; leave empty to keep them.",
    )
    index_mode = forms.ChoiceField(choices=Gallery.IndexMode.choices, initial=Gallery.IndexMode.EXACT)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Gallery.objects.filter(name=name).exists():
            raise forms.ValidationError("A gallery of that name exists already.")
        return name


class RetentionForm(forms.Form):
    retention_days = forms.IntegerField(
        label="Retention (days)",
        min_value=1,
        max_value=36500,
        required=False,
        help_text="Leave empty to keep images until they are removed on request.",
    )


class ZipEnrolForm(forms.Form):
    archive = forms.FileField(
        label="Zip of images with subjects.csv",
        help_text="subjects.csv has the columns file and subject_ref (or identity); further columns become the"
        " subject's attributes. Files are named relative to subjects.csv.",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )


class FolderEnrolForm(forms.Form):
    folder = forms.CharField(
        label="Server folder",
        max_length=1000,
        help_text="A folder holding subjects.csv and its images, inside a folder the server is configured to read"
        " (RFR_ENROLMENT_ROOTS).",
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label="Reason", widget=forms.Textarea(attrs={"rows": 2}), max_length=1000, help_text=REASON_HELP
    )


class ThresholdProposalForm(forms.Form):
    """The first step of a threshold change: which default and what value, to see its expected error rates."""

    target = forms.ChoiceField(label="Which default", help_text="The pack's system default, or one gallery's own.")
    value = forms.FloatField(
        label="Proposed threshold",
        min_value=-1.0,
        max_value=1.0,
        required=False,
        help_text="A score between -1 and 1; for a gallery, leave empty to clear its own default.",
    )

    def __init__(self, *args: object, galleries: list[Gallery], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["target"].choices = [("system", "System default (every gallery without its own)")] + [  # type: ignore[attr-defined]
            (str(g.pk), f"Gallery {g.name}") for g in galleries
        ]

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        if data.get("target") == "system" and data.get("value") is None and "value" not in self.errors:
            self.add_error("value", "Give the proposed threshold.")
        return data


class ThresholdSetForm(ThresholdProposalForm):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        max_length=2000,
        help_text="Why the threshold changes; recorded in the audit trail with the figures shown above.",
    )


class EvaluationQueueForm(forms.Form):
    """Measure the active pack on a labelled folder the server can read (search.evaluations)."""

    kind = forms.ChoiceField(
        label="Kind of evaluation",
        choices=[
            ("demographics", "Demographic differentials (labels CSV: file,age,sex,race[,identity])"),
            ("verification", "Verification (1:1 pairs file)"),
            ("identification", "Identification (1:N identities CSV)"),
        ],
    )
    folder = forms.CharField(
        label="Folder on the server",
        max_length=1000,
        help_text="Inside a folder open for evaluation (RFR_EVALUATION_ROOTS); relative to the first of them.",
    )
    labels = forms.CharField(
        label="Labels file",
        max_length=1000,
        required=False,
        initial="labels.csv",
        help_text="The labels, pairs or identities file, relative to the folder.",
    )
    dataset_name = forms.CharField(label="Data set name", max_length=200, help_text="As the pages will show it.")
    research = forms.BooleanField(
        label="Research data (not casework)", required=False, initial=True, help_text="Shown wherever the run is."
    )
