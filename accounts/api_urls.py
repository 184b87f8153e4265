from django.urls import path

from accounts.api import ObtainTokenView, TokenDetailAPI, TokenListAPI, TokenRotateAPI

urlpatterns = [
    path("token/", ObtainTokenView.as_view(), name="api-auth-token"),
    path("token/rotate/", TokenRotateAPI.as_view(), name="api-auth-token-rotate"),
    path("tokens/", TokenListAPI.as_view(), name="api-auth-tokens"),
    path("tokens/<int:token_id>/", TokenDetailAPI.as_view(), name="api-auth-token-detail"),
]
