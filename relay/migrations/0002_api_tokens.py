"""API tokens kept as digests (``relay.models.ApiToken``) in place of REST framework's
``authtoken_token``, which kept every key in clear.

Each existing key is hashed into the new table, so tokens people and bridges hold keep working,
and then the old table is dropped with the keys in it. Going back cannot recover a key: the
reverse drops the new table, and every token must then be made again.
"""

import datetime
import hashlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models
from django.utils import timezone
from django.utils.dateparse import parse_datetime

OLD_TABLE = "authtoken_token"


def hash_existing_keys(apps, schema_editor):
    connection = schema_editor.connection
    with connection.cursor() as cursor:
        if OLD_TABLE not in connection.introspection.table_names(cursor):
            return
        q = schema_editor.quote_name
        cursor.execute(f"SELECT {q('key')}, {q('user_id')}, {q('created')} FROM {q(OLD_TABLE)}")
        rows = cursor.fetchall()
    ApiToken = apps.get_model("relay", "ApiToken")
    for key, user_id, created in rows:
        token = ApiToken.objects.create(
            digest=hashlib.sha256(key.encode()).hexdigest(),
            prefix=key[:8],
            user_id=user_id,
            label="made before tokens were hashed",
        )
        if isinstance(created, str):  # SQLite answers a raw query with text
            created = parse_datetime(created)
        if created is not None:  # auto_now_add set it to now; keep when it was made
            if timezone.is_naive(created):  # stored in UTC
                created = timezone.make_aware(created, datetime.timezone.utc)
            ApiToken.objects.filter(pk=token.pk).update(created_at=created)
    schema_editor.execute(f"DROP TABLE {schema_editor.quote_name(OLD_TABLE)}")


class Migration(migrations.Migration):
    dependencies = [
        ("relay", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="ApiToken",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("digest", models.CharField(editable=False, max_length=64, unique=True)),
                ("prefix", models.CharField(editable=False, max_length=8)),
                ("label", models.CharField(blank=True, default="", max_length=100)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="api_tokens",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={"verbose_name": "API token", "ordering": ["user_id", "created_at"]},
        ),
        migrations.RunPython(hash_existing_keys, migrations.RunPython.noop),
    ]
