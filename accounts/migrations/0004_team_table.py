# The team tables take the accounts app's names (cases_team -> accounts_team, and its member and supervisor
# tables); rows, ids and the foreign keys pointing at them are kept.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0003_team_from_cases"),
        ("cases", "0004_team_moved_to_accounts"),
    ]

    operations = [
        migrations.AlterModelTable(name="team", table=None),
    ]
