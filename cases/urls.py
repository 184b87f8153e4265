"""Case pages, in the `cases` namespace. Every page reaches its object through its case (404 for outsiders);
add a row for each new URL to the permission matrix in tests/test_permissions.py."""

from django.urls import path

from cases import case_pages, queue_views, research_views, video_views, views

app_name = "cases"

urlpatterns = [
    # Cases
    path("cases/", views.case_list, name="list"),
    path("cases/new/", views.case_new, name="create"),
    path("cases/<int:case_id>/", views.case_detail, name="detail"),
    path("cases/<int:case_id>/members/", views.case_members_page, name="members"),
    path("cases/<int:case_id>/close/", case_pages.case_close_page, name="close"),
    path("cases/<int:case_id>/reopen/", case_pages.case_reopen_page, name="reopen"),
    path("cases/<int:case_id>/notes/", case_pages.case_note_new, name="note-new"),
    path("cases/<int:case_id>/notes/<int:note_id>/", case_pages.case_note_page, name="note"),
    path("cases/<int:case_id>/timeline/", views.case_timeline, name="timeline"),
    # The workbench under a case: probes and faces, searches, candidates and decisions
    path("cases/<int:case_id>/workbench/", views.case_workbench, name="workbench"),
    path("cases/<int:case_id>/workbench/upload/", views.probe_upload, name="probe-upload"),
    path("probes/<int:probe_id>/", views.probe_detail, name="probe"),
    path("probes/<int:probe_id>/status.json", views.probe_status, name="probe-status"),
    path("probes/<int:probe_id>/image", views.probe_image, name="probe-image"),
    path("probes/<int:probe_id>/display", views.probe_display_image, name="probe-display"),
    path("probes/<int:probe_id>/draw/", views.probe_face_draw, name="probe-draw"),
    path("probes/<int:probe_id>/mark/", views.probe_face_mark, name="probe-mark"),
    path("probes/<int:probe_id>/mark/region.png", views.probe_region_image, name="probe-region"),
    path("probes/<int:probe_id>/mark/preview.png", views.probe_landmarks_preview, name="probe-mark-preview"),
    path("probes/<int:probe_id>/enhance/", views.probe_enhance, name="probe-enhance"),
    path("probes/<int:probe_id>/enhance/preview.png", views.probe_enhance_preview, name="probe-enhance-preview"),
    path("faces/<int:face_id>/crop.png", views.face_crop, name="face-crop"),
    path("faces/<int:face_id>/search/", views.face_search, name="face-search"),
    path("searches/<int:search_id>/", views.search_detail, name="search"),
    path("searches/<int:search_id>/status.json", views.search_status, name="search-status"),
    path("searches/<int:search_id>/report.pdf", views.search_report, name="search-report"),
    path(
        "searches/<int:search_id>/keep-searching/",
        research_views.search_keep_searching,
        name="search-keep-searching",
    ),
    path("candidates/<int:candidate_id>/", views.candidate_detail, name="candidate"),
    path("candidates/<int:candidate_id>/decide/", views.candidate_decide, name="candidate-decide"),
    path("candidates/<int:candidate_id>/image", views.candidate_image, name="candidate-image"),
    path("candidates/<int:candidate_id>/crop.png", views.candidate_crop, name="candidate-crop"),
    # What is waiting for the signed-in person: the review queue and their notifications
    path("queue/", queue_views.review_queue, name="queue"),
    path("notifications/", queue_views.notification_list, name="notifications"),
    path("notifications/read/", queue_views.notifications_read_all, name="notifications-read"),
    path("notifications/<int:notification_id>/open/", queue_views.notification_open, name="notification-open"),
    path("candidates/<int:candidate_id>/thumb.png", views.candidate_thumbnail, name="candidate-thumb"),
    # Video evidence (cases/video_views.py): footage, its frames, tracks and merges
    path("cases/<int:case_id>/videos/upload/", video_views.video_upload, name="video-upload"),
    path("videos/<int:video_id>/", video_views.video_detail, name="video"),
    path("videos/<int:video_id>/status.json", video_views.video_status, name="video-status"),
    path("videos/<int:video_id>/original", video_views.video_original, name="video-original"),
    path("videos/<int:video_id>/frame/", video_views.video_frame, name="video-frame"),
    path("videos/<int:video_id>/frame.png", video_views.video_frame_image, name="video-frame-image"),
    path("videos/<int:video_id>/grab/", video_views.video_grab, name="video-grab"),
    path("tracks/<int:track_id>/", video_views.track_detail, name="track"),
    path("tracks/<int:track_id>/shots/<int:rank>.jpg", video_views.track_shot_image, name="track-shot"),
    path("tracks/<int:track_id>/search/", video_views.track_search, name="track-search"),
    path("merges/<int:merge_id>/decide/", video_views.merge_decide, name="merge-decide"),
]
