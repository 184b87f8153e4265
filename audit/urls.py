from django.urls import path

from audit import views

urlpatterns = [
    path("", views.audit_list, name="audit-list"),
    path("export.csv", views.audit_export, name="audit-export"),
]
