"""The two staff roles of the back-office, as Django groups.

- "License managers" run the business: customers (add, change, view, delete), licenses
  (issue, edit notes, view, revoke) and reading the audit log.
- "Auditors" read everything (customers, licenses, the audit log, API keys) and change nothing.

Permissions are normally created after `migrate` (post_migrate); on a fresh database they do
not exist yet when this migration runs, so it creates them first.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

GROUPS = {
    "License managers": [
        ("customers", "add_customer"),
        ("customers", "change_customer"),
        ("customers", "view_customer"),
        ("customers", "delete_customer"),
        ("licensing", "add_license"),
        ("licensing", "change_license"),
        ("licensing", "view_license"),
        ("licensing", "revoke_license"),
        ("audit", "view_auditlog"),
    ],
    "Auditors": [
        ("customers", "view_customer"),
        ("licensing", "view_license"),
        ("audit", "view_auditlog"),
        ("aegis", "view_apikey"),
    ],
}


def create_groups(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, perms in GROUPS.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.set(
            [
                Permission.objects.get(content_type__app_label=app, codename=codename)
                for app, codename in perms
            ]
        )


def remove_groups(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=GROUPS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("aegis", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("customers", "0001_initial"),
        ("licensing", "0002_revoke_permission"),
        ("audit", "0001_initial"),
    ]

    operations = [migrations.RunPython(create_groups, remove_groups)]
