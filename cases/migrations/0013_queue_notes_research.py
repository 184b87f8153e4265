"""Review queue notifications, re-search (runs, watches, new candidates), case notes, and unique case references.

Existing duplicate references (compared without letter case) are made unique before the constraint is added:
the earliest case keeps its reference, each later one gets " [dup <id>]" appended (the case.created audit event
keeps the reference each case was opened with), so the upgrade never fails on old data.
"""

import django.db.models.deletion
import django.db.models.functions.text
from django.conf import settings
from django.db import migrations, models


def references_deduplicate(apps, schema_editor):  # type: ignore[no-untyped-def]
    Case = apps.get_model("cases", "Case")
    seen: set[str] = set()
    for case in Case.objects.order_by("created_at", "pk").only("pk", "reference"):
        key = case.reference.lower()
        if key in seen:
            suffix = f" [dup {case.pk}]"
            case.reference = case.reference[: 64 - len(suffix)] + suffix
            Case.objects.filter(pk=case.pk).update(reference=case.reference)
            key = case.reference.lower()
        seen.add(key)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_grants_legacy_tokens_removed"),
        ("cases", "0012_decision_features"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="CaseNote",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("text", models.TextField()),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("version", models.PositiveIntegerField(default=1)),
            ],
            options={
                "ordering": ["created_at", "id"],
            },
        ),
        migrations.CreateModel(
            name="Notification",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("review_waiting", "A second review is waiting"),
                            ("released", "A possible match was released"),
                            ("disputed", "Two assessments disagree"),
                            ("research_found", "Re-search found new candidates"),
                        ],
                        max_length=20,
                    ),
                ),
                ("text", models.CharField(max_length=300)),
                ("url", models.CharField(blank=True, max_length=255)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("read_at", models.DateTimeField(blank=True, null=True)),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="SearchRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                (
                    "number",
                    models.PositiveIntegerField(help_text="2 for the first re-run (the search itself is run 1)."),
                ),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField()),
                (
                    "templates_after",
                    models.BigIntegerField(help_text="Highest template id already compared before this run."),
                ),
                ("templates_up_to", models.BigIntegerField(help_text="Highest template id compared by this run.")),
                ("templates_compared", models.PositiveIntegerField(default=0)),
                ("new_candidates", models.PositiveIntegerField(default=0)),
            ],
            options={
                "ordering": ["search_id", "number"],
            },
        ),
        migrations.CreateModel(
            name="SearchWatch",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("started_at", models.DateTimeField(auto_now_add=True)),
                ("templates_up_to", models.BigIntegerField(default=0)),
                ("stopped_at", models.DateTimeField(blank=True, null=True)),
                (
                    "stop_reason",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("person", "Stopped by a person"),
                            ("case_closed", "The case was closed"),
                            ("released", "A possible match was released"),
                        ],
                        max_length=16,
                    ),
                ),
            ],
        ),
        migrations.AddField(
            model_name="candidate",
            name="new_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(references_deduplicate, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="case",
            constraint=models.UniqueConstraint(
                django.db.models.functions.text.Lower("reference"), name="case_unique_reference"
            ),
        ),
        migrations.AddField(
            model_name="casenote",
            name="author",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="casenote",
            name="case",
            field=models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="notes", to="cases.case"),
        ),
        migrations.AddField(
            model_name="casenote",
            name="replaces",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="replaced_by",
                to="cases.casenote",
            ),
        ),
        migrations.AddField(
            model_name="notification",
            name="case",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="cases.case"
            ),
        ),
        migrations.AddField(
            model_name="notification",
            name="recipient",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="notifications", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddField(
            model_name="searchrun",
            name="search",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.CASCADE, related_name="runs", to="cases.search"
            ),
        ),
        migrations.AddField(
            model_name="candidate",
            name="found_by_run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="candidates",
                to="cases.searchrun",
            ),
        ),
        migrations.AddField(
            model_name="searchwatch",
            name="search",
            field=models.OneToOneField(
                on_delete=django.db.models.deletion.CASCADE, related_name="watch", to="cases.search"
            ),
        ),
        migrations.AddField(
            model_name="searchwatch",
            name="started_by",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="+", to=settings.AUTH_USER_MODEL
            ),
        ),
        migrations.AddIndex(
            model_name="notification",
            index=models.Index(fields=["recipient", "read_at"], name="notification_unread"),
        ),
        migrations.AddConstraint(
            model_name="searchrun",
            constraint=models.UniqueConstraint(fields=("search", "number"), name="searchrun_unique_number"),
        ),
    ]
