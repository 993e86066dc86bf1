from __future__ import annotations

import uuid

from django.db.models import QuerySet

from licensing.models import License


def license_list() -> QuerySet[License]:
    return License.objects.select_related("customer")


def license_get(license_id: uuid.UUID | str) -> License | None:
    try:
        pk = uuid.UUID(str(license_id))
    except ValueError:
        return None
    return license_list().filter(pk=pk).first()
