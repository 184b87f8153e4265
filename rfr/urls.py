from django.contrib import admin
from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView

from rfr import views
from rfr.api_docs import api_docs, api_redoc
from rfr.error_handling import api_not_found

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("manage/", include("accounts.manage_urls")),  # rfr's admin pages; other apps add sections under it
    path("audit/", include("audit.urls")),
    path("manage/", include("search.urls")),
    path("", include("cases.urls")),
    # API
    # Signed-in people only (SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]; api_docs is login_required).
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", api_docs, name="api-docs"),
    path("api/redoc/", api_redoc, name="api-redoc"),
    path("api/auth/", include("accounts.api_urls")),
    path("api/", include("cases.api_urls")),
    path("api/", include("search.api_urls")),
    # Last: any other /api/ address answers the API's JSON 404, not an HTML page.
    re_path(r"^api/", api_not_found, name="api-not-found"),
]

handler404 = "rfr.error_handling.page_not_found"
handler500 = "rfr.error_handling.server_error"
