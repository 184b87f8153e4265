# Erasure (issue 9): a candidate whose gallery entry was removed keeps its place in the case history,
# marked removed with the subject reference blanked; template_id indexed to find them in the removal.

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('cases', '0006_faults_liveness'),
    ]

    operations = [
        migrations.AddField(
            model_name='candidate',
            name='subject_removal',
            field=models.CharField(blank=True, choices=[('request', 'deleted on request'), ('retention', "deleted under the gallery's retention rule")], max_length=16),
        ),
        migrations.AddField(
            model_name='candidate',
            name='subject_removed_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='candidate',
            name='template_id',
            field=models.BigIntegerField(db_index=True),
        ),
    ]
