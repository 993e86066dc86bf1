"""Back-office fixtures: logged-in clients for each staff role."""

from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.test import Client

staff_groups_migration = importlib.import_module("aegis.migrations.0002_staff_groups")


@pytest.fixture
def staff_groups(db):
    """The groups migration aegis 0002 creates (recreated if a transactional test flushed
    them), from the migration's own code and historical models."""
    names = set(staff_groups_migration.GROUPS)
    if Group.objects.filter(name__in=names).count() != len(names):
        state = MigrationLoader(connection).project_state(("aegis", "0002_staff_groups"))
        staff_groups_migration.create_groups(state.apps, None)
    return names


@pytest.fixture
def login(django_user_model, staff_groups):
    def make(username: str, *, group: str | None = None, superuser=False, staff=True) -> Client:
        # No password: the client logs in with force_login, and hashing one costs ~0.3 s.
        user = django_user_model.objects.create_user(
            username, f"{username}@example.com", None, is_staff=staff, is_superuser=superuser
        )
        if group:
            user.groups.add(Group.objects.get(name=group))
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def boss(login) -> Client:
    """A superuser."""
    return login("boss", superuser=True)


@pytest.fixture
def manager(login) -> Client:
    return login("mia", group="License managers")


@pytest.fixture
def auditor(login) -> Client:
    return login("audrey", group="Auditors")


@pytest.fixture
def plain_staff(login) -> Client:
    """Staff without any permission."""
    return login("sam")


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


def form_errors(response) -> dict[str, list[str]]:
    form = response.context["adminform"].form
    return {field: list(errors) for field, errors in form.errors.items()}
