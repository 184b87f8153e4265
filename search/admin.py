"""Admin for galleries: small uploads run the enrolment pipeline. The admin's own delete is switched off: a
subject or image is removed only with the action "Remove with a reason", which asks for the reason and goes
through the removal services (audited, erased from the index files, candidates marked removed). The models
refuse any other delete (search.models.gallery_removal_permitted)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse

from rfr.errors import ApplicationError
from search import enrolment, galleries
from search.models import EnrolmentRun, Gallery, GalleryImage, Subject

REMOVE_TEMPLATE = "admin/search/remove_with_reason.html"


class RemovalReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        max_length=1000,
        help_text="Why the data is deleted (e.g. the deletion request and its decision); recorded in the audit trail.",
    )

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required to delete gallery data.")
        return str(reason)


class RemoveWithReasonMixin:
    """Deletion switched off; an action that asks for a reason first and removes through the services."""

    removal_noun = "item"

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # the stock delete asks for no reason: see remove_with_reason

    def has_remove_permission(self, request: HttpRequest) -> bool:
        opts = self.model._meta  # type: ignore[attr-defined]
        return bool(request.user.has_perm(f"{opts.app_label}.delete_{opts.model_name}"))

    def remove_one(self, request: HttpRequest, obj: Any, reason: str) -> None:
        raise NotImplementedError

    @admin.action(description="Remove with a reason…", permissions=["remove"])
    def remove_with_reason(self, request: HttpRequest, queryset: QuerySet[Any]) -> HttpResponse | None:
        form = RemovalReasonForm(request.POST if "apply" in request.POST else None)
        if form.is_bound and form.is_valid():
            removed = 0
            for obj in queryset:
                try:
                    self.remove_one(request, obj, form.cleaned_data["reason"])
                except ApplicationError as error:
                    self.message_user(request, f"{obj}: {error.message}", messages.ERROR)  # type: ignore[attr-defined]
                    continue
                removed += 1
            self.message_user(request, f"Removed {removed} {self.removal_noun}(s) with the reason given.")  # type: ignore[attr-defined]
            return None
        opts = self.model._meta  # type: ignore[attr-defined]
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": f"Remove {opts.verbose_name_plural} with a reason",
            "opts": opts,
            "queryset": queryset,
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            "action": "remove_with_reason",
        }
        return TemplateResponse(request, REMOVE_TEMPLATE, context)


@admin.register(Gallery)
class GalleryAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "index_mode", "retention_days", "created_at"]
    list_filter = ["kind", "index_mode"]
    search_fields = ["name"]
    actions = ["purge_expired"]

    def save_model(self, request: HttpRequest, obj: Gallery, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = galleries.gallery_create(
            name=obj.name,
            kind=obj.kind,
            description=obj.description,
            provenance=obj.provenance,
            retention_days=obj.retention_days,
            index_mode=obj.index_mode,
            actor=request.user,
            request=request,
        )
        obj.pk = created.pk

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a whole gallery goes only by deleting its subjects, each audited

    @admin.action(description="Purge images past the retention period")
    def purge_expired(self, request: HttpRequest, queryset: QuerySet[Gallery]) -> None:
        for gallery in queryset:
            purged = galleries.gallery_purge_expired(gallery=gallery, actor=request.user)
            self.message_user(request, f"{gallery.name}: purged {purged.get(gallery.name, 0)} images.")


class GalleryImageUploadForm(forms.ModelForm):
    upload = forms.ImageField(help_text="One photo of one person; it is enrolled through the face pipeline.")
    subject_ref = forms.CharField(max_length=120, help_text="Custody or PNC reference of the person shown.")

    class Meta:
        model = GalleryImage
        fields = ["gallery", "provenance", "captured_at"]


@admin.register(GalleryImage)
class GalleryImageAdmin(RemoveWithReasonMixin, admin.ModelAdmin):
    removal_noun = "image"
    actions = ["remove_with_reason"]
    list_display = ["pk", "gallery", "subject", "original_filename", "captured_at", "enrolled_at"]
    list_filter = ["gallery"]
    search_fields = ["subject__external_ref", "original_filename", "sha256"]
    readonly_fields = [
        "gallery",
        "subject",
        "file",
        "sha256",
        "original_filename",
        "provenance",
        "captured_at",
    ]

    def get_form(self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is None:
            kwargs["form"] = GalleryImageUploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        if obj is None:
            return ["gallery", "subject_ref", "upload", "provenance", "captured_at"]
        return self.readonly_fields

    def save_model(self, request: HttpRequest, obj: GalleryImage, form: Any, change: bool) -> None:
        if change:
            return  # enrolled images are not edited; delete and enrol again instead
        upload = form.cleaned_data["upload"]
        try:
            enrolled = enrolment.gallery_image_enrol(
                gallery=form.cleaned_data["gallery"],
                data=upload.read(),
                subject_ref=form.cleaned_data["subject_ref"],
                original_filename=upload.name,
                provenance=form.cleaned_data.get("provenance") or "",
                captured_at=form.cleaned_data.get("captured_at"),
                actor=request.user,
                request=request,
            )
        except enrolment.EnrolmentError as error:
            self.message_user(request, f"Not enrolled: {error}", messages.ERROR)
            return
        if enrolled is None:
            self.message_user(request, "This image is already in the gallery.", messages.WARNING)
            return
        obj.pk = enrolled.pk

    def response_add(self, request: HttpRequest, obj: GalleryImage, post_url_continue: str | None = None) -> Any:
        if obj.pk is None:
            return HttpResponseRedirect(request.path)
        return super().response_add(request, obj, post_url_continue)

    def remove_one(self, request: HttpRequest, obj: GalleryImage, reason: str) -> None:
        galleries.gallery_image_delete(image=obj, reason=reason, actor=request.user, request=request)


@admin.register(Subject)
class SubjectAdmin(RemoveWithReasonMixin, admin.ModelAdmin):
    removal_noun = "subject"
    actions = ["remove_with_reason"]
    list_display = ["external_ref", "name", "gallery", "created_at"]
    list_filter = ["gallery"]
    search_fields = ["external_ref", "name"]
    readonly_fields = ["gallery", "external_ref"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # subjects come with their images (enrolment)

    def remove_one(self, request: HttpRequest, obj: Subject, reason: str) -> None:
        galleries.subject_delete(subject=obj, reason=reason, actor=request.user, request=request)


@admin.register(EnrolmentRun)
class EnrolmentRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "gallery", "actor_name", "status", "counts", "started_at", "finished_at"]
    list_filter = ["status", "gallery"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
