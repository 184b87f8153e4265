"""Writing audit events. Call `audit_event_record` inside the transaction of the change it describes."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone

from audit.models import AuditEvent

GENESIS_HASH = "0" * 64
# Any constant works; it names the advisory lock that serialises chain appends on PostgreSQL.
_PG_CHAIN_LOCK = 72_657_201
_FORBIDDEN_DETAIL_KEYS = {"embedding", "template", "image", "pixels", "vector"}


def canonical_content(event: AuditEvent) -> str:
    """The row's content as hashed: fixed key order, compact separators, times in UTC ISO form."""
    payload = {
        "seq": event.seq,
        "created_at": event.created_at.astimezone(timezone.UTC).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "case_id": event.case_id,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "detail": event.detail,
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)


def compute_row_hash(prev_hash: str, event: AuditEvent) -> str:
    return hashlib.sha256((prev_hash + "\n" + canonical_content(event)).encode("utf-8")).hexdigest()


def _client_ip(request: HttpRequest) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is client-controlled unless a trusted proxy is configured.
    return request.META.get("REMOTE_ADDR") or None


def audit_event_record(
    *,
    action: str,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    target: Any = None,
    target_type: str = "",
    target_id: str | int = "",
    case_id: int | None = None,
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction (a rollback removes it with the change)."""
    detail = dict(detail or {})
    leaked = _FORBIDDEN_DETAIL_KEYS & set(detail)
    if leaked:
        raise ValueError(f"Biometric data must not enter the audit log (keys {sorted(leaked)}).")
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if user is None and request is not None and getattr(request, "user", None) is not None:
        user = request.user if request.user.is_authenticated else None
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_CHAIN_LOCK])
        last = AuditEvent.objects.order_by("-seq").values("seq", "row_hash").first()
        event = AuditEvent(
            seq=(last["seq"] + 1) if last else 1,
            created_at=timezone.now(),
            actor=user,  # type: ignore[misc]
            actor_username=getattr(user, "username", "") or str(detail.get("username", ""))[:150],
            action=action,
            target_type=target_type,
            target_id=str(target_id),
            case_id=case_id,
            ip_address=_client_ip(request) if request is not None else None,
            user_agent=(request.META.get("HTTP_USER_AGENT", "")[:400] if request is not None else ""),
            detail=detail,
            prev_hash=last["row_hash"] if last else GENESIS_HASH,
        )
        event.row_hash = compute_row_hash(event.prev_hash, event)
        event.save()
    return event
