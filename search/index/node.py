"""Search nodes: the only processes that hold gallery indexes.

Searches run on the Celery "search" queue, whose workers load each gallery index once (one process per node,
run with a threads pool, so a second pack is a second index in that process, not a copy per worker process).
Web processes and inference workers never load one: `index_load_check` refuses, and everything they do to an
index goes through the database (the change log, a new epoch) or a task on the search queue.

A process is a search node when
- it is a Celery worker that consumes the search queue (noted at worker start, search.tasks), or
- it was started with RFR_SEARCH_NODE=1 (a node process of one's own, the benchmark's node), or
- tasks run in-process (the embedded default, CELERY_TASK_ALWAYS_EAGER: one process does everything, so it is
  its own search node; nothing else would hold the index).
"""

from __future__ import annotations

from celery import current_app
from django.conf import settings

from rfr.errors import ApplicationError

_node = {"declared": False}


class NotASearchNode(ApplicationError):
    """An index was about to be loaded outside a search node: a wiring fault, not a user's."""

    status = 500


def search_node_enter() -> None:
    """Declare this process a search node (a search-queue worker at start-up; tests; node processes)."""
    _node["declared"] = True


def search_node_leave() -> None:
    _node["declared"] = False


def is_search_node() -> bool:
    embedded = bool(settings.CELERY_TASK_ALWAYS_EAGER) or bool(current_app.conf.task_always_eager)
    return _node["declared"] or bool(settings.RFR_SEARCH_NODE) or embedded


def index_load_check() -> None:
    """Refuse to load a gallery index in a process that is not a search node."""
    if not is_search_node():
        raise NotASearchNode(
            "index_outside_search_node",
            "A gallery index may only be loaded by a search node (a worker on the search queue).",
        )
