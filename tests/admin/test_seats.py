"""Seats in the back-office: a license's activations on its page (clone suspicions
flagged) and *Release*, which calls the service and is a license manager's to use."""

from __future__ import annotations

import pytest
from django.urls import reverse

from audit.models import AuditLog
from licensing.models import Activation
from licensing.seats import license_activate

pytestmark = pytest.mark.django_db


def activate(license, db_uuid: str, domain: str, **fields):
    return license_activate(
        token=license.token,
        module_name=license.module_name,
        odoo_version="17.0",
        instance_db_uuid=db_uuid,
        instance_domain=domain,
        **fields,
    ).activation


@pytest.fixture
def seated(make_license):
    license = make_license(max_instances=3)
    original = activate(license, "db-1", "erp.acme.example")
    copy = activate(license, "db-1", "copy.acme.example", environment="staging")
    other = activate(make_license(), "db-9", "elsewhere.example")
    return license, original, copy, other


def test_the_license_page_lists_its_activations_with_clone_suspicions(auditor, seated):
    license, original, _, _ = seated
    page = auditor.get(reverse("admin:licensing_license_change", args=[license.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Activations (seats)" in html
    assert "erp.acme.example" in html and "copy.acme.example" in html
    assert "elsewhere.example" not in html  # another license's
    assert html.count("clone?") == 2
    assert original.fingerprint[:19] in html and "Staging" in html
    assert "Release…" in html
    # Nothing on the issue form.
    assert (
        "Activations (seats)"
        not in auditor.get(reverse("admin:licensing_license_add")).content.decode()
    )


def test_a_manager_releases_an_activation_through_the_service(manager, seated):
    license, original, _, _ = seated
    url = reverse("admin:licensing_activation_release", args=[original.pk])
    confirm = manager.get(url)
    assert confirm.status_code == 200 and b"Yes, release this activation" in confirm.content
    assert Activation.objects.get(pk=original.pk).released_at is None  # a GET changes nothing

    response = manager.post(url, {"confirm": "yes"})

    assert response.status_code == 302
    assert response["Location"] == reverse("admin:licensing_license_change", args=[license.pk])
    assert Activation.objects.get(pk=original.pk).released_at is not None
    row = AuditLog.objects.get(event_type="activation.released")
    assert (row.actor, row.event_data["by"]) == ("user:mia", "staff")
    manager.post(url, {"confirm": "yes"})  # again: a message, no second row
    assert AuditLog.objects.filter(event_type="activation.released").count() == 1


def test_auditors_see_activations_but_cannot_release(auditor, seated):
    _, original, _, _ = seated
    assert auditor.get(reverse("admin:licensing_activation_changelist")).status_code == 200
    url = reverse("admin:licensing_activation_release", args=[original.pk])
    assert auditor.get(url).status_code == 403
    assert auditor.post(url, {"confirm": "yes"}).status_code == 403
    assert Activation.objects.get(pk=original.pk).released_at is None


def test_plain_staff_see_no_activations(plain_staff, seated):
    assert plain_staff.get(reverse("admin:licensing_activation_changelist")).status_code == 403


def test_bulk_release_from_the_list(manager, seated):
    _, original, copy, _ = seated
    changelist = reverse("admin:licensing_activation_changelist")
    chosen = {"action": "release_selected", "_selected_action": [original.pk, copy.pk]}
    confirm = manager.post(changelist, chosen)
    assert confirm.status_code == 200 and b"Yes, release 2 activations" in confirm.content
    manager.post(changelist, chosen | {"confirm": "yes"})
    released = set(Activation.objects.exclude(released_at=None).values_list("pk", flat=True))
    assert released == {original.pk, copy.pk}
    assert AuditLog.objects.filter(event_type="activation.released").count() == 2


def test_the_dashboard_shows_seats_in_use_and_activations_per_day(auditor, plain_staff, seated):
    page = auditor.get(reverse("admin:index")).content.decode()
    assert "Seats in use" in page
    assert "New activations per day" in page
    assert "seats in use now: 2 production, 1 staging" in page
    assert "3 activations" in page  # today's bar
    assert "Seats in use" not in plain_staff.get(reverse("admin:index")).content.decode()
