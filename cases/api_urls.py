"""Case API routes, mounted at /api/. Every route reaches its object through its case (404 for outsiders);
add a row for each new URL to the permission matrix in tests/test_permissions.py."""

from django.urls import path

from cases import api, api_images, api_lifecycle, api_review, research_views, video_api

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
        "searches/<int:search_id>/keep-searching/",
        research_views.SearchKeepSearchingAPI.as_view(),
        name="api-search-keep-searching",
    ),
    path(
        "candidates/<int:candidate_id>/decisions/", api.CandidateDecisionsAPI.as_view(), name="api-candidate-decisions"
    ),
    # Closing and reopening a case, a case's searches, one candidate (issue 13)
    path("cases/<int:case_id>/close/", api_lifecycle.CaseCloseAPI.as_view(), name="api-case-close"),
    path("cases/<int:case_id>/reopen/", api_lifecycle.CaseReopenAPI.as_view(), name="api-case-reopen"),
    path("cases/<int:case_id>/searches/", api_review.CaseSearchesAPI.as_view(), name="api-case-searches"),
    path("candidates/<int:candidate_id>/", api_review.CandidateAPI.as_view(), name="api-candidate"),
    # The images, for token clients too: the pages' image addresses' twins (cases.images)
    path("probes/<int:probe_id>/image/", api_images.ProbeImageAPI.as_view(), name="api-probe-image"),
    path("probes/<int:probe_id>/display/", api_images.ProbeDisplayImageAPI.as_view(), name="api-probe-display"),
    path("faces/<int:face_id>/crop/", api_images.FaceCropAPI.as_view(), name="api-face-crop"),
    path("candidates/<int:candidate_id>/image/", api_images.CandidateImageAPI.as_view(), name="api-candidate-image"),
    path("candidates/<int:candidate_id>/crop/", api_images.CandidateCropAPI.as_view(), name="api-candidate-crop"),
    # Video evidence (cases/video_api.py)
    path("cases/<int:case_id>/videos/", video_api.CaseVideosAPI.as_view(), name="api-case-videos"),
    path("videos/<int:video_id>/", video_api.VideoAPI.as_view(), name="api-video"),
    path("videos/<int:video_id>/stills/", video_api.VideoStillsAPI.as_view(), name="api-video-stills"),
    path("tracks/<int:track_id>/searches/", video_api.TrackSearchesAPI.as_view(), name="api-track-searches"),
    path("merges/<int:merge_id>/decision/", video_api.MergeDecisionAPI.as_view(), name="api-merge-decision"),
]
