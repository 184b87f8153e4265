from django.urls import path

from accounts import views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("totp/", views.totp, name="totp"),
    path("tokens/", views.api_tokens, name="api-tokens"),
    path("password/", views.password_change, name="password-change"),
]
