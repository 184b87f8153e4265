"""Case API routes, mounted at /api/cases/. Further case-scoped API modules mount beside this one and must
add rows to the permission matrix in tests/test_permissions.py."""

from django.urls import path

from cases import api

urlpatterns = [
    path("", api.CaseListCreateAPI.as_view(), name="api-case-list"),
    path("<int:case_id>/", api.CaseDetailAPI.as_view(), name="api-case-detail"),
    path("<int:case_id>/audit/", api.CaseAuditAPI.as_view(), name="api-case-audit"),
]
