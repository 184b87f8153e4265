"""/manage/galleries/, /manage/modelpacks/, /manage/accuracy/, /manage/thresholds/ and /manage/cohorts/: rfr's
own admin pages
(search.views)."""

from django.urls import path

from search import views

app_name = "search"

urlpatterns = [
    path("galleries/", views.gallery_list, name="manage-galleries"),
    path("galleries/new/", views.gallery_new, name="manage-gallery-new"),
    path("galleries/<int:gallery_id>/", views.gallery_detail, name="manage-gallery"),
    path("galleries/<int:gallery_id>/retention/", views.gallery_retention, name="manage-gallery-retention"),
    path("galleries/<int:gallery_id>/purge/", views.gallery_purge, name="manage-gallery-purge"),
    path("galleries/<int:gallery_id>/enrol/zip/", views.gallery_enrol_zip, name="manage-gallery-enrol-zip"),
    path("galleries/<int:gallery_id>/enrol/folder/", views.gallery_enrol_folder, name="manage-gallery-enrol-folder"),
    path("galleries/runs/<int:run_id>/", views.enrolment_run_detail, name="manage-enrolment-run"),
    path("galleries/runs/<int:run_id>/resume/", views.enrolment_run_resume_view, name="manage-enrolment-run-resume"),
    path("galleries/runs/<int:run_id>/status/", views.enrolment_run_status, name="manage-enrolment-run-status"),
    path("galleries/subjects/<int:subject_id>/", views.subject_detail, name="manage-subject"),
    path("galleries/subjects/<int:subject_id>/remove/", views.subject_remove, name="manage-subject-remove"),
    path("galleries/images/<int:image_id>/remove/", views.image_remove, name="manage-image-remove"),
    path("modelpacks/", views.modelpack_list, name="manage-modelpacks"),
    path("modelpacks/<str:name>/verify/", views.modelpack_verify_view, name="manage-modelpack-verify"),
    path("modelpacks/<str:name>/activate/", views.modelpack_activate_view, name="manage-modelpack-activate"),
    path("modelpacks/<str:name>/reembed/", views.modelpack_reembed_view, name="manage-modelpack-reembed"),
    path("modelpacks/reembed/<int:run_id>/", views.reembed_run_detail, name="manage-reembed-run"),
    path("modelpacks/reembed/<int:run_id>/status/", views.reembed_run_status, name="manage-reembed-run-status"),
    path("accuracy/", views.accuracy, name="manage-accuracy"),
    path("accuracy/annex.pdf", views.accuracy_annex, name="manage-accuracy-annex"),
    path("accuracy/runs/new/", views.accuracy_run_new, name="manage-accuracy-run-new"),
    path("accuracy/runs/<int:run_id>/", views.accuracy_run_detail, name="manage-accuracy-run"),
    path("accuracy/runs/<int:run_id>/status/", views.accuracy_run_status, name="manage-accuracy-run-status"),
    path("accuracy/runs/<int:run_id>/<str:attribute>.png", views.accuracy_curve, name="manage-accuracy-curve"),
    path("thresholds/", views.thresholds, name="manage-thresholds"),
    path("thresholds/set/", views.threshold_set, name="manage-threshold-set"),
    path("cohorts/", views.cohort_list, name="manage-cohorts"),
    path("cohorts/<int:cohort_id>/activate/", views.cohort_activate_view, name="manage-cohort-activate"),
    path("cohorts/deactivate/", views.cohort_deactivate_view, name="manage-cohort-deactivate"),
]
