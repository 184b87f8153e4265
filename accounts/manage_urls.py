"""/manage/: rfr's own admin pages for users, roles and teams (accounts.manage_views)."""

from django.urls import path

from accounts import manage_views

app_name = "manage"

urlpatterns = [
    path("", manage_views.manage_index, name="index"),
    path("users/", manage_views.user_list, name="users"),
    path("users/<int:user_id>/", manage_views.user_detail, name="user"),
    path("users/<int:user_id>/<slug:action>/", manage_views.user_action, name="user-action"),
    path("teams/", manage_views.team_list, name="teams"),
    path("teams/<int:team_id>/", manage_views.team_detail, name="team"),
]
