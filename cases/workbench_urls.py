"""URLs of the case workbench: pages under /cases/<id>/workbench/, /probes/, /faces/, /searches/,
/candidates/, and the REST API under /api/. Every view reaches its object through its case
(404 for outsiders)."""

from django.urls import path

from cases import workbench_api as api
from cases import workbench_views as views

app_name = "workbench"

urlpatterns = [
    # Pages
    path("cases/<int:case_id>/workbench/", views.case_workbench, name="case"),
    path("cases/<int:case_id>/workbench/upload/", views.probe_upload, name="probe-upload"),
    path("probes/<int:probe_id>/", views.probe_detail, name="probe"),
    path("probes/<int:probe_id>/status.json", views.probe_status, name="probe-status"),
    path("probes/<int:probe_id>/image", views.probe_image, name="probe-image"),
    path("probes/<int:probe_id>/draw/", views.probe_face_draw, name="probe-draw"),
    path("faces/<int:face_id>/crop.png", views.face_crop, name="face-crop"),
    path("faces/<int:face_id>/search/", views.face_search, name="face-search"),
    path("searches/<int:search_id>/", views.search_detail, name="search"),
    path("searches/<int:search_id>/status.json", views.search_status, name="search-status"),
    path("searches/<int:search_id>/report.pdf", views.search_report, name="search-report"),
    path("candidates/<int:candidate_id>/", views.candidate_detail, name="candidate"),
    path("candidates/<int:candidate_id>/decide/", views.candidate_decide, name="candidate-decide"),
    path("candidates/<int:candidate_id>/image", views.candidate_image, name="candidate-image"),
    path("candidates/<int:candidate_id>/crop.png", views.candidate_crop, name="candidate-crop"),
    # REST API
    path("api/cases/<int:case_id>/probes/", api.CaseProbesAPI.as_view(), name="api-case-probes"),
    path("api/probes/<int:probe_id>/", api.ProbeAPI.as_view(), name="api-probe"),
    path("api/probes/<int:probe_id>/faces/", api.ProbeFacesAPI.as_view(), name="api-probe-faces"),
    path("api/faces/<int:face_id>/searches/", api.FaceSearchesAPI.as_view(), name="api-face-searches"),
    path("api/searches/<int:search_id>/", api.SearchAPI.as_view(), name="api-search"),
    path("api/searches/<int:search_id>/status/", api.SearchStatusAPI.as_view(), name="api-search-status"),
    path(
        "api/candidates/<int:candidate_id>/decisions/",
        api.CandidateDecisionsAPI.as_view(),
        name="api-candidate-decisions",
    ),
]
