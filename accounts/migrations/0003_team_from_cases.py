# Team moves from the cases app to accounts (teams and roles belong together, and accounts must not depend on
# cases). The table and its rows stay where they are: this migration changes Django's state only, and moves
# the content type so that the permissions already granted on teams (role groups) follow the model.
# accounts/0004 then renames the tables.

from django.conf import settings
from django.db import migrations, models


def content_type_to_accounts(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    if not content_types.objects.filter(app_label="accounts", model="team").exists():
        content_types.objects.filter(app_label="cases", model="team").update(app_label="accounts")


def content_type_to_cases(apps, schema_editor):
    content_types = apps.get_model("contenttypes", "ContentType")
    if not content_types.objects.filter(app_label="cases", model="team").exists():
        content_types.objects.filter(app_label="accounts", model="team").update(app_label="cases")


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_login_throttle"),
        ("cases", "0003_alter_probe_progress"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Team",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(max_length=120, unique=True)),
                        ("members", models.ManyToManyField(blank=True, related_name="teams", to=settings.AUTH_USER_MODEL)),
                        (
                            "supervisors",
                            models.ManyToManyField(blank=True, related_name="supervised_teams", to=settings.AUTH_USER_MODEL),
                        ),
                    ],
                    options={"ordering": ["name"], "db_table": "cases_team"},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_accounts, content_type_to_cases),
    ]
