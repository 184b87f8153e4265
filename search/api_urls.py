"""The gallery side's API routes, mounted at /api/."""

from django.urls import path

from search import api

urlpatterns = [
    path("galleries/", api.GalleryListAPI.as_view(), name="api-gallery-list"),
]
