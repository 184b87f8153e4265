"""Case API routes, mounted at /api/. Every route reaches its object through its case (404 for outsiders);
add a row for each new URL to the permission matrix in tests/test_permissions.py."""

from django.urls import path

from cases import api, video_api

urlpatterns = [
    path("cases/", api.CaseListCreateAPI.as_view(), name="api-case-list"),
    path("cases/<int:case_id>/", api.CaseDetailAPI.as_view(), name="api-case-detail"),
    path("cases/<int:case_id>/audit/", api.CaseAuditAPI.as_view(), name="api-case-audit"),
    path("cases/<int:case_id>/access/", api.CaseAccessAPI.as_view(), name="api-case-access"),
    path("cases/<int:case_id>/probes/", api.CaseProbesAPI.as_view(), name="api-case-probes"),
    path("probes/<int:probe_id>/", api.ProbeAPI.as_view(), name="api-probe"),
    path("probes/<int:probe_id>/faces/", api.ProbeFacesAPI.as_view(), name="api-probe-faces"),
    path("probes/<int:probe_id>/landmarks/", api.ProbeLandmarksAPI.as_view(), name="api-probe-landmarks"),
    path("probes/<int:probe_id>/derived/", api.ProbeDerivedAPI.as_view(), name="api-probe-derived"),
    path(
        "probes/<int:probe_id>/enhancement-preview/",
        api.ProbeEnhancementPreviewAPI.as_view(),
        name="api-probe-enhancement-preview",
    ),
    path("faces/<int:face_id>/searches/", api.FaceSearchesAPI.as_view(), name="api-face-searches"),
    path("searches/<int:search_id>/", api.SearchAPI.as_view(), name="api-search"),
    path("searches/<int:search_id>/status/", api.SearchStatusAPI.as_view(), name="api-search-status"),
    path(
        "candidates/<int:candidate_id>/decisions/", api.CandidateDecisionsAPI.as_view(), name="api-candidate-decisions"
    ),
    # Video evidence (cases/video_api.py)
    path("cases/<int:case_id>/videos/", video_api.CaseVideosAPI.as_view(), name="api-case-videos"),
    path("videos/<int:video_id>/", video_api.VideoAPI.as_view(), name="api-video"),
    path("videos/<int:video_id>/stills/", video_api.VideoStillsAPI.as_view(), name="api-video-stills"),
    path("tracks/<int:track_id>/searches/", video_api.TrackSearchesAPI.as_view(), name="api-track-searches"),
    path("merges/<int:merge_id>/decision/", video_api.MergeDecisionAPI.as_view(), name="api-merge-decision"),
]
