"""Bulk-enrolment items read through storage: where a run's copies live, and its server folder still to copy.

Runs recorded before this held absolute paths in their items; they get the folder "/", so that a run
unfinished at the upgrade copies its pending items in (from the same absolute paths) when it is resumed.
"""

from django.db import migrations, models


def _existing_runs_read_absolute_paths(apps, schema_editor):
    EnrolmentRun = apps.get_model("search", "EnrolmentRun")
    EnrolmentRun.objects.all().update(import_folder="/")


class Migration(migrations.Migration):
    dependencies = [
        ("search", "0007_s7_score_cohorts"),
    ]

    operations = [
        migrations.AddField(
            model_name="enrolmentrun",
            name="import_folder",
            field=models.CharField(blank=True, max_length=1000),
        ),
        migrations.AddField(
            model_name="enrolmentrun",
            name="imported_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="enrolmentrun",
            name="staging_key",
            field=models.CharField(blank=True, max_length=64),
        ),
        migrations.RunPython(_existing_runs_read_absolute_paths, migrations.RunPython.noop),
    ]
