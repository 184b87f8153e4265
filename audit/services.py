"""Writing audit events. Call `audit_event_record` inside the transaction of the change it describes.

    with transaction.atomic():
        case = Case.objects.create(...)
        audit_event_record(action=AuditAction.CASE_CREATED, actor=user, target=case, case_id=case.pk, request=request)

The event joins the caller's transaction: a rollback removes it together with the change, and a commit
always carries it. Each row is chained to the previous one by `row_hash = HMAC-SHA256(audit key, prev_hash +
"\\n" + canonical_content(row))`, keyed with a secret held outside the database (audit.keys); rows written
before keyed hashing keep their plain sha256 (`hash_scheme`). When the transaction commits, the new head is
appended to the anchor file (audit.anchor). `manage.py audit verify` (audit.verify) recomputes the chain and
checks it against the anchor.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from functools import partial
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.http import HttpRequest
from django.utils import timezone
from django.utils.ipv6 import clean_ipv6_address

from audit.actions import AuditAction
from audit.anchor import audit_anchor_append
from audit.keys import audit_hmac
from audit.models import AuditEvent, HashScheme
from rfr.proxies import client_address

GENESIS_HASH = "0" * 64
# Any constant works; it names the advisory lock that serialises chain appends on PostgreSQL.
_PG_CHAIN_LOCK = 72_657_201
# Keys that would carry biometric data, checked at every depth of `detail` (counts such as "images": 3 are
# fine). Bytes are refused outright, and so is any long run of floats, which can only be a vector.
_FORBIDDEN_DETAIL_KEYS = frozenset({"embedding", "embeddings", "template", "image", "pixels", "vector", "vectors"})
_MAX_FLOAT_RUN = 32
_MAX_TARGET = AuditEvent._meta.get_field("target_id").max_length or 64


def _canonical_value(value: Any) -> Any:
    # PostgreSQL jsonb stores numbers as numeric and hands 1.0 or 1e20 back as an int, so integral floats
    # are hashed as ints; otherwise the hash of a row would depend on which database read it back.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical_value(v) for v in value]
    return value


def canonical_content(event: AuditEvent) -> str:
    """The row's content as hashed: fixed key order, compact separators, times in UTC ISO form."""
    payload = {
        "seq": event.seq,
        "created_at": event.created_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        "actor_id": event.actor_id,
        "actor_username": event.actor_username,
        "action": event.action,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "case_id": event.case_id,
        "ip_address": event.ip_address,
        "user_agent": event.user_agent,
        "detail": _canonical_value(event.detail),
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def compute_row_hash(prev_hash: str, event: AuditEvent) -> str:
    """The row's hash under its `hash_scheme`: keyed for every row written now, plain sha256 for old rows."""
    message = prev_hash + "\n" + canonical_content(event)
    if event.hash_scheme == HashScheme.HMAC_SHA256:
        return audit_hmac(message)
    if event.hash_scheme == HashScheme.SHA256:
        return hashlib.sha256(message.encode("utf-8")).hexdigest()
    raise ValueError(f"Unknown audit hash scheme {event.hash_scheme!r}.")


def _check_no_biometrics(value: Any, path: str = "detail") -> None:
    if isinstance(value, bytes | bytearray | memoryview):
        raise ValueError(f"Binary data must not enter the audit log ({path}).")
    if isinstance(value, dict):
        leaked = _FORBIDDEN_DETAIL_KEYS & {str(k).lower() for k in value}
        if leaked:
            raise ValueError(f"Biometric data must not enter the audit log (keys {sorted(leaked)} in {path}).")
        for key, item in value.items():
            _check_no_biometrics(item, f"{path}.{key}")
    elif isinstance(value, list | tuple):
        if len(value) >= _MAX_FLOAT_RUN and all(isinstance(item, float) for item in value):
            raise ValueError(f"A vector of {len(value)} numbers must not enter the audit log ({path}).")
        for index, item in enumerate(value):
            _check_no_biometrics(item, f"{path}[{index}]")


def _normalised_detail(detail: dict[str, Any] | None) -> dict[str, Any]:
    """The detail exactly as it will read back from the database (JSON round trip), so the hash matches."""
    detail = dict(detail or {})
    _check_no_biometrics(detail)
    # default=str turns dates, Decimals and UUIDs into text now rather than letting each backend choose.
    normalised: dict[str, Any] = json.loads(json.dumps(detail, default=str, allow_nan=False))
    return normalised


def client_ip(request: HttpRequest) -> str | None:
    """The client's address, normalised as the database stores it, or None if it is not an IP address.

    The peer (REMOTE_ADDR), unless the peer is one of RFR_TRUSTED_PROXIES, in which case the client that proxy
    reports (rfr.proxies.client_address, which TrustedProxyMiddleware has usually applied already; applying
    it again gives the same answer). The sign-in lockout keys on this too (accounts.selectors.request_ip)."""
    raw = client_address(request.META).strip()
    if not raw:
        return None
    try:
        if ":" in raw:
            return clean_ipv6_address(raw)
        AuditEvent._meta.get_field("ip_address").run_validators(raw)
    except ValidationError:
        return None
    return raw


# Events with no signed-in actor that are still someone's own act: a sign-in attempt by name. Elsewhere a
# detail["username"] names whom the event is about (the user a grant was made to), never who acted.
_ATTEMPTS_BY_NAME = frozenset({AuditAction.AUTH_LOGIN_FAILED, AuditAction.AUTH_LOCKOUT})


def _attempted_username(action: AuditAction, detail: dict[str, Any]) -> str:
    return str(detail.get("username", "")) if action in _ATTEMPTS_BY_NAME else ""


def audit_event_record(
    *,
    action: AuditAction,
    actor: AbstractBaseUser | AnonymousUser | None = None,
    target: Any = None,
    target_type: str = "",
    target_id: str | int = "",
    case_id: int | None = None,
    request: HttpRequest | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, in the caller's transaction (a rollback removes it with the change).

    `actor` defaults to the request's authenticated user. With no user on a sign-in attempt (a failed login, a
    lockout), put the attempted username in `detail["username"]`: it is kept in `actor_username` so the event
    can be found by name. Other events with no user have no actor name (put who ran them in `detail["by"]`).
    """
    if not isinstance(action, AuditAction):
        # A closed vocabulary: a free-text action would slip past filters, docs and reviewers.
        raise TypeError(f"Audit action must be an audit.actions.AuditAction member, got {action!r}.")
    clean_detail = _normalised_detail(detail)
    if target is not None:
        target_type = target_type or target._meta.label_lower
        target_id = target_id or target.pk
    user = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    if user is None and actor is None and request is not None:
        request_user = getattr(request, "user", None)
        user = request_user if request_user is not None and request_user.is_authenticated else None
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_CHAIN_LOCK])
        last = AuditEvent.objects.order_by("-seq").values("seq", "row_hash").first()
        event = AuditEvent(
            seq=(last["seq"] + 1) if last else 1,
            created_at=timezone.now(),
            actor=user,  # type: ignore[misc]
            actor_username=(getattr(user, "username", "") or _attempted_username(action, clean_detail))[:150],
            action=action.value,
            target_type=str(target_type)[:_MAX_TARGET],
            target_id=str(target_id)[:_MAX_TARGET],
            case_id=case_id,
            ip_address=client_ip(request) if request is not None else None,
            user_agent=(request.META.get("HTTP_USER_AGENT", "")[:400] if request is not None else ""),
            detail=clean_detail,
            prev_hash=last["row_hash"] if last else GENESIS_HASH,
            hash_scheme=HashScheme.HMAC_SHA256,
        )
        event.row_hash = compute_row_hash(event.prev_hash, event)
        event.save(force_insert=True)
        # Anchored only once it has committed: a rolled-back event must not be claimed as the head.
        transaction.on_commit(partial(audit_anchor_append, seq=event.seq, row_hash=event.row_hash), robust=True)
    return event


def audit_export_record(
    *, user: AbstractBaseUser | AnonymousUser, events: Any, filters: dict[str, Any], request: HttpRequest | None
) -> int:
    """Record a CSV export before it is produced; returns the last sequence number it may contain, so the
    export holds exactly the rows up to this event (later ones, its own included, are not in it)."""
    with transaction.atomic():
        last_seq = int(events.values_list("seq", flat=True).first() or 0)
        audit_event_record(
            action=AuditAction.AUDIT_EXPORTED,
            actor=user,
            request=request,
            detail={"filters": filters, "rows": events.count(), "up_to_seq": last_seq},
        )
    return last_seq
