"""Case pages. Add further case pages in their own url module (e.g. cases/workbench_urls.py) and add a row
for each to the permission matrix in tests/test_permissions.py."""

from django.urls import path

from cases import views

urlpatterns = [
    path("", views.case_list, name="case-list"),
    path("new/", views.case_new, name="case-create"),
    path("<int:case_id>/", views.case_detail, name="case-detail"),
    path("<int:case_id>/members/", views.case_members_page, name="case-members"),
    path("<int:case_id>/close/", views.case_close_page, name="case-close"),
    path("<int:case_id>/timeline/", views.case_timeline, name="case-timeline"),
]
