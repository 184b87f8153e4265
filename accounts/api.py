"""The token API.

`POST /api/auth/token/`: exchange username + password (+ TOTP code where required) for a new API token. The
key is in this one response and never again: only its hash is stored (accounts.tokens).
`DELETE /api/auth/token/`: revoke the token the request is made with (or, signed in on the web, all of one's
own tokens).
`POST /api/auth/token/rotate/`: a new key in place of the token the request is made with, which is revoked in the
same transaction; the new token keeps the old one's expiry (accounts.services.api_token_rotate).
`GET /api/auth/tokens/`, `DELETE /api/auth/tokens/{id}/`: one's own tokens (never a key: only its first
characters), and revoking one of them by id; anyone else's token id is 404.
"""

from __future__ import annotations

from typing import Any, cast

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.authtoken.serializers import AuthTokenSerializer
from rest_framework.exceptions import NotFound, PermissionDenied
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from accounts.models import ApiToken
from accounts.otp import admin_totp_required, totp_token_verify, user_totp_device
from accounts.selectors import password_change_required
from accounts.services import api_token_issue, api_token_rotate, api_tokens_revoke, login_failure_record
from accounts.tokens import TOKEN_STATES, api_token_refusal, api_tokens_of
from rfr.errors import InvalidInput


class TokenRequestSerializer(AuthTokenSerializer):
    otp_token = serializers.CharField(required=False, allow_blank=True, write_only=True, max_length=12)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)  # authenticate(): failures and lockouts are recorded by accounts.signals
        user = attrs["user"]
        if password_change_required(user):
            # An admin set this password: only its owner, choosing their own on the web, may use the account.
            raise PermissionDenied("An admin set your password: choose your own on the web before using the API.")
        device = user_totp_device(user)
        request = self.context.get("request")
        attrs["totp_verified"] = False
        if device is not None:
            if not totp_token_verify(device=device, token=attrs.get("otp_token") or ""):
                login_failure_record(username=user.get_username(), request=request, reason="otp_invalid")
                raise serializers.ValidationError(
                    {"otp_token": ["Enter the current 6-digit code from your authenticator app."]}
                )
            attrs["totp_verified"] = True
        elif admin_totp_required(user):
            raise PermissionDenied("Admins must set up an authenticator app (TOTP) on the web before using the API.")
        return attrs


class TokenResponseSerializer(serializers.Serializer):
    token = serializers.CharField(
        help_text="Send as `Authorization: Token <token>` on every API request. Shown only in this response."
    )
    expires_at = serializers.DateTimeField(help_text="After this time the token is refused; ask for a new one.")


class ObtainTokenView(APIView):
    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    # Password guessing through the API meets the same lockout as the sign-in page, and this rate besides.
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "token"

    def get_throttles(self) -> list[Any]:
        # The rate guards password guessing; revoking (DELETE) is not throttled by it.
        return super().get_throttles() if self.request.method == "POST" else []

    def get_authenticators(self) -> list[Any]:
        # POST takes credentials in the body; DELETE is made with the token (or session) to revoke.
        if getattr(self, "request", None) is not None and self.request.method == "POST":
            return []
        return [auth() for auth in self.settings.DEFAULT_AUTHENTICATION_CLASSES]

    def get_permissions(self) -> list[Any]:
        return [AllowAny()] if self.request.method == "POST" else [IsAuthenticated()]

    @extend_schema(request=TokenRequestSerializer, responses={200: TokenResponseSerializer})
    def post(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = TokenRequestSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        key, token = api_token_issue(
            user=serializer.validated_data["user"],
            totp_verified=serializer.validated_data["totp_verified"],
            request=request._request,
        )
        return Response({"token": key, "expires_at": token.expires_at})

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke the token this request is made with; with a web session, every token of one's own."""
        token_ids = [request.auth.pk] if isinstance(request.auth, ApiToken) else None
        api_tokens_revoke(
            user=cast(Any, request.user),
            revoked_by=request.user,
            reason="revoked_by_owner",
            token_ids=token_ids,
            request=request._request,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


class TokenRotateAPI(APIView):
    @extend_schema(
        request=None,
        responses={200: TokenResponseSerializer},
        description="Replace the token this request is made with by a new one: the old one is revoked in the same"
        " transaction and the new key is in this one response. The new token expires when the old one would have:"
        " rotating renews the secret, not the lifetime. Audited (auth.token_rotated).",
    )
    def post(self, request: Request) -> Response:
        if not isinstance(request.auth, ApiToken):
            raise InvalidInput(
                "token_required", "Rotate a token by sending it: `Authorization: Token <key>` on this request."
            )
        key, token = api_token_rotate(token=request.auth, request=request._request)
        return Response({"token": key, "expires_at": token.expires_at})


class TokenSerializer(serializers.ModelSerializer):
    state = serializers.SerializerMethodField(help_text="Valid, Revoked, Expired, or why it is refused.")
    current = serializers.SerializerMethodField(help_text="The token this request is made with.")

    class Meta:
        model = ApiToken
        fields = ["id", "prefix", "created_at", "expires_at", "revoked_at", "revoked_reason", "state", "current"]
        read_only_fields = fields

    def get_state(self, token: ApiToken) -> str:
        return TOKEN_STATES[api_token_refusal(token)]

    def get_current(self, token: ApiToken) -> bool:
        auth = self.context.get("auth")
        return isinstance(auth, ApiToken) and auth.pk == token.pk


# As many as the token page lists: enough to find the one to revoke, without paging.
TOKENS_LISTED = 50


class TokenListAPI(APIView):
    @extend_schema(
        responses={200: TokenSerializer(many=True)},
        description=f"Your own API tokens, newest first (at most {TOKENS_LISTED}); never a key, only its first"
        " characters.",
    )
    def get(self, request: Request) -> Response:
        tokens = api_tokens_of(request.user)[:TOKENS_LISTED]
        return Response(TokenSerializer(tokens, many=True, context={"auth": request.auth}).data)


class TokenDetailAPI(APIView):
    @extend_schema(
        request=None,
        responses={204: None},
        description="Revoke one of your own tokens by id (revoking one already revoked changes nothing). Audited"
        " (auth.token_revoked).",
    )
    def delete(self, request: Request, token_id: int) -> Response:
        if not api_tokens_of(request.user).filter(pk=token_id).exists():
            raise NotFound("No such token of yours.")  # someone else's token is not theirs to learn of
        api_tokens_revoke(
            user=cast(Any, request.user),
            revoked_by=request.user,
            reason="revoked_by_owner",
            token_ids=[token_id],
            request=request._request,
            record_none=False,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
