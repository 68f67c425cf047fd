"""The one-time nonce of the /tokens/ form that made a token, so the same form sent again (a
page reload) is recognised instead of refused as a taken name. Existing tokens keep ""."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0018_state_labels_sentence_case"),
    ]

    operations = [
        migrations.AddField(
            model_name="servicetoken",
            name="form_nonce",
            field=models.CharField(blank=True, max_length=64),
        ),
    ]
