"""POST /api/auth/token/: exchange username + password (+ TOTP code where required) for an API token."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import PermissionDenied
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from accounts.otp import admin_totp_required, totp_token_verify, user_totp_device
from accounts.services import login_failure_record, login_success_record
from audit.actions import AuditAction


class TokenRequestSerializer(AuthTokenSerializer):
    otp_token = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=12)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)  # authenticate(): failures and lockouts are recorded by accounts.signals
        user = attrs["user"]
        device = user_totp_device(user)
        request = self.context.get("request")
        if device is not None:
            if not totp_token_verify(device=device, token=attrs.get("otp_token") or ""):
                login_failure_record(username=user.get_username(), request=request, reason="otp_invalid")
                raise serializers.ValidationError(
                    {"otp_token": ["Enter the current 6-digit code from your authenticator app."]}
                )
        elif admin_totp_required(user):
            raise PermissionDenied("Admins must set up an authenticator app (TOTP) on the web before using the API.")
        return attrs


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(help_text="Send as `Authorization: Token <token>` on every API request.")


class ObtainTokenView(ObtainAuthToken):
    serializer_class = TokenRequestSerializer
    # Password guessing through the API meets the same lockout as the sign-in page, and this rate besides.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenResponseSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        user = serializer.validated_data["user"]
        with transaction.atomic():
            token, created = Token.objects.get_or_create(user=user)
            login_success_record(
                user=user, request=request, action=AuditAction.AUTH_TOKEN_OBTAINED, detail={"new": created}
            )
        return Response({"token": token.key})
