"""Which grants are already being recorded: the bridge between the audited services and the ORM-path receivers.

Every change to who may do what (roles, teams, staff and superuser flags, passwords, tokens, TOTP devices,
object permissions) is recorded in the audit trail. The services in accounts.services (and cases.lifecycle)
record their own change, with its actor and reason; the signal receivers in accounts.signals record any change
that reached the database another way (the Django admin, a shell, a migration), so that none goes unseen.

A service marks the block in which it changes grants with `grants_recorded()`; the receivers then stay silent
for that block, so a change made through a service is recorded once, by the service. A context variable (not a
thread-local) so that it follows the code path, in threads and in async code alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.http import HttpRequest

_recorded_by_caller: ContextVar[bool] = ContextVar("rfr_grants_recorded_by_caller", default=False)


@contextmanager
def grants_recorded() -> Iterator[None]:
    """The grants changed inside this block are recorded by the caller (a service), not by the receivers."""
    token = _recorded_by_caller.set(True)
    try:
        yield
    finally:
        _recorded_by_caller.reset(token)


def grants_recorded_by_caller() -> bool:
    return _recorded_by_caller.get()


# The request of the Django admin view in progress (set by accounts.admin_site), so that a grant the admin makes
# directly on a model is recorded with its actor and address rather than as "nobody".
_admin_request: ContextVar[HttpRequest | None] = ContextVar("rfr_grants_admin_request", default=None)


@contextmanager
def grants_request(request: HttpRequest) -> Iterator[None]:
    token = _admin_request.set(request)
    try:
        yield
    finally:
        _admin_request.reset(token)


def grants_current_request() -> HttpRequest | None:
    return _admin_request.get()
