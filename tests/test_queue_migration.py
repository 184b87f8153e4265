"""The migration that makes case references unique copes with duplicates already in the database: the earliest
case keeps its reference, later ones get " [dup <id>]", and the constraint is then in force."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("cases", "0012_decision_features")]
AFTER = [("cases", "0013_queue_notes_research")]


@pytest.mark.django_db(transaction=True)
def test_existing_duplicate_references_are_renamed_before_the_constraint() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        apps = executor.loader.project_state(BEFORE).apps
        User = apps.get_model("auth", "User")
        Case = apps.get_model("cases", "Case")
        owner = User.objects.create(username="dup-owner")
        fields = {"title": "t", "purpose": "suspect", "legal_basis": "b", "owner": owner}
        first = Case.objects.create(reference="OP-7", **fields)
        second = Case.objects.create(reference="op-7", **fields)
        third = Case.objects.create(reference="OP-7", **fields)
        other = Case.objects.create(reference="OP-8", **fields)
        executor = MigrationExecutor(connection)
        executor.migrate(AFTER)
        Case = executor.loader.project_state(AFTER).apps.get_model("cases", "Case")
        references = dict(Case.objects.values_list("pk", "reference"))
        assert references[first.pk] == "OP-7" and references[other.pk] == "OP-8"
        assert references[second.pk] == f"op-7 [dup {second.pk}]"
        assert references[third.pk] == f"OP-7 [dup {third.pk}]"
    finally:
        MigrationExecutor(connection).migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
