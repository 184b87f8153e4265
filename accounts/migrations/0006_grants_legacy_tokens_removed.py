"""Delete the API keys an earlier release kept in clear (DRF's authtoken_token).

Since 0005 rfr issues its own tokens (accounts.tokens: only a hash of each key is stored, and each expires);
the old keys no longer authenticate anyone, but anyone who can read the table or a backup could still read
them. Removing them takes access from nobody. Their holders ask for a new token (POST /api/auth/token/).
"""

from django.db import migrations


def legacy_tokens_delete(apps, schema_editor):
    apps.get_model("authtoken", "Token").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0005_grants_api_tokens"),
        ("authtoken", "0004_alter_tokenproxy_options"),
    ]

    operations = [migrations.RunPython(legacy_tokens_delete, migrations.RunPython.noop)]
