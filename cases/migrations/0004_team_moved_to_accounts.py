# Team now lives in accounts (accounts/0003): point Case.team at it and drop the model from this app's state.
# Nothing changes in the database here.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("cases", "0003_alter_probe_progress"),
        ("accounts", "0003_team_from_cases"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="case",
                    name="team",
                    field=models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="cases",
                        to="accounts.team",
                    ),
                ),
                migrations.DeleteModel(name="Team"),
            ],
            database_operations=[],
        ),
    ]
