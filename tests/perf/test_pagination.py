"""Page numbers at scale (aegis/core/api/pagination.py): a bounded or estimated count, an exact
`next`, and deferred joins for deep pages, without changing what a client reads."""

from __future__ import annotations

import pytest

from aegis.core.api import pagination
from licensing.models import License
from tests.api.conftest import client_with

URL = "/api/v1/licenses"
pytestmark = pytest.mark.django_db


@pytest.fixture
def reader(make_key):
    return client_with(make_key("readonly"))


@pytest.fixture
def licenses(make_license):
    return [make_license(license_type="subscription", duration_days=d) for d in range(1, 13)]


def walk(client, url) -> list[dict]:
    """Every row, following `next` from the first page."""
    rows, pages = [], 0
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.json()
        body = response.json()
        rows += body["results"]
        url, pages = body["next"], pages + 1
        assert pages <= 20
    return rows


def test_small_results_are_counted_exactly(reader, licenses):
    assert reader.get(URL, {"page_size": 5}).json()["count"] == 12
    assert reader.get(URL, {"license_type": "perpetual"}).json()["count"] == 0


@pytest.mark.parametrize("deferred_from", [pagination.DEFERRED_JOIN_FROM, 0, 3])
@pytest.mark.parametrize("ordering", [None, "expires_at", "-expires_at"])
def test_pages_hold_every_row_once_in_order(reader, licenses, monkeypatch, deferred_from, ordering):
    monkeypatch.setattr(pagination, "DEFERRED_JOIN_FROM", deferred_from)
    query = {"page_size": "5"} | ({"ordering": ordering} if ordering else {})
    rows = walk(reader, URL + "?" + "&".join(f"{k}={v}" for k, v in query.items()))
    expected = License.objects.all()
    if ordering:
        expected = expected.order_by(ordering, "pk")
    assert [row["id"] for row in rows] == [str(pk) for pk in expected.values_list("pk", flat=True)]
    assert all("customer_name" in row for row in rows)


def test_the_last_page_has_no_next_and_a_page_past_it_is_404(reader, licenses):
    last = reader.get(URL, {"page_size": 5, "page": 3}).json()
    assert len(last["results"]) == 2 and last["next"] is None and last["previous"]
    response = reader.get(URL, {"page_size": 5, "page": 4})
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"


def test_next_is_exact_when_the_page_is_exactly_full(reader, make_license):
    for _ in range(4):
        make_license()
    body = reader.get(URL, {"page_size": 2, "page": 2}).json()
    assert len(body["results"]) == 2 and body["next"] is None


@pytest.mark.postgres
def test_above_the_limit_the_count_is_an_estimate_never_below_it(reader, licenses, monkeypatch):
    monkeypatch.setattr(pagination, "COUNT_EXACT_UP_TO", 5)
    assert reader.get(URL).json()["count"] >= 6
    # A filter the planner expects few rows for is still counted exactly.
    customer_id = licenses[0].customer_id
    assert pagination.bounded_count(License.objects.filter(customer_id="nobody"), 5) == 0
    assert pagination.bounded_count(License.objects.filter(customer_id=customer_id), 100) == 12


@pytest.mark.postgres
def test_the_estimate_comes_from_the_planner(licenses):
    estimate = pagination.planner_estimate(License.objects.all())
    assert isinstance(estimate, int) and estimate >= 1


def test_a_page_that_is_not_full_costs_no_count(reader, licenses, django_assert_num_queries):
    reader.get(URL)  # the first use of a key records last_used_at
    with django_assert_num_queries(2):  # the key, the page
        assert reader.get(URL, {"page_size": 50}).json()["count"] == 12


@pytest.mark.postgres
def test_a_full_page_asks_the_planner_then_counts_at_most_the_limit(
    reader, licenses, django_assert_num_queries
):
    reader.get(URL)
    with django_assert_num_queries(4) as captured:  # the key, the page, EXPLAIN, COUNT
        assert reader.get(URL, {"page_size": 5}).json()["count"] == 12
    sql = [q["sql"] for q in captured.captured_queries]
    assert sql[2].startswith("EXPLAIN")
    assert "LIMIT 10001" in sql[3]


@pytest.mark.postgres
def test_the_planner_is_asked_once_per_filter_within_its_time(
    reader, licenses, django_assert_num_queries, monkeypatch
):
    clock = [1000.0]
    monkeypatch.setattr(pagination.time, "monotonic", lambda: clock[0])
    reader.get(URL)
    reader.get(URL, {"page_size": 5})  # asks the planner
    with django_assert_num_queries(3) as captured:  # the key, the page, COUNT
        assert reader.get(URL, {"page_size": 5, "page": 2}).json()["count"] == 12
    assert not any(q["sql"].startswith("EXPLAIN") for q in captured.captured_queries)
    # Another filter is other SQL: the planner is asked for it.
    with django_assert_num_queries(4):
        assert reader.get(URL, {"page_size": 5, "status": "active"}).json()["count"] == 12
    # Past its time the estimate is asked for again; the count stays exact throughout.
    clock[0] += pagination.ESTIMATE_TTL_SECONDS
    with django_assert_num_queries(4):
        assert reader.get(URL, {"page_size": 5}).json()["count"] == 12


@pytest.mark.postgres
def test_a_filter_on_the_current_time_keeps_its_estimate_within_the_minute(
    reader, licenses, django_assert_num_queries, monkeypatch
):
    """`status=active` compares with now(): the estimate's key takes instants to the
    minute, or every request would ask the planner again."""
    import datetime as dt

    from django.db import connection
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    instant = [dt.datetime(2026, 11, 29, 5, 50, 1, tzinfo=dt.UTC)]
    monkeypatch.setattr(timezone, "now", lambda: instant[0])
    reader.get(URL)
    reader.get(URL, {"page_size": 5, "status": "active"})  # asks the planner
    instant[0] += dt.timedelta(seconds=30)
    with django_assert_num_queries(3) as captured:  # the key, the page, COUNT
        assert reader.get(URL, {"page_size": 5, "status": "active"}).json()["count"] == 12
    assert not any(q["sql"].startswith("EXPLAIN") for q in captured.captured_queries)
    instant[0] += dt.timedelta(minutes=1)  # another minute: asked again
    with CaptureQueriesContext(connection) as captured:
        reader.get(URL, {"page_size": 5, "status": "active"})
    assert sum(q["sql"].startswith("EXPLAIN") for q in captured.captured_queries) == 1


@pytest.mark.postgres
def test_a_time_of_zero_asks_the_planner_on_every_page(
    reader, licenses, django_assert_num_queries, monkeypatch
):
    monkeypatch.setattr(pagination, "ESTIMATE_TTL_SECONDS", 0.0)
    reader.get(URL)
    for page in (1, 2):
        with django_assert_num_queries(4):  # the key, the page, EXPLAIN, COUNT
            assert reader.get(URL, {"page_size": 5, "page": page}).json()["count"] == 12
    assert not pagination._estimates


@pytest.mark.postgres
def test_search_has_trigram_indexes_on_postgresql():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'licensing_license' "
            "AND indexname LIKE '%%trgm%%'"
        )
        indexes = dict(cursor.fetchall())
    assert set(indexes) == {"license_module_trgm_idx", "license_notes_trgm_idx"}
    assert all("gin_trgm_ops" in definition for definition in indexes.values())
    assert _without_pending_list(indexes)


def _without_pending_list(names) -> bool:
    """GIN indexes that write through (fastupdate off, licensing/0006): a pending list
    would be read whole by every search until VACUUM merged it."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, reloptions FROM pg_class WHERE relname = ANY(%s)", [list(names)]
        )
        options = dict(cursor.fetchall())
    return set(options) == set(names) and all(
        "fastupdate=off" in (value or []) for value in options.values()
    )


@pytest.mark.postgres
def test_customer_search_has_trigram_indexes_used_by_the_planner(customer):
    from django.db import connection

    from customers.models import Customer

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'customers_customer' "
            "AND indexname LIKE '%%trgm%%'"
        )
        indexes = dict(cursor.fetchall())
        # A tiny table is read whole: ask whether the index can serve the pattern at all.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        plan = Customer.objects.filter(name__icontains="acme").order_by().explain()
    assert set(indexes) == {
        "customer_id_trgm_idx",
        "customer_name_trgm_idx",
        "customer_email_trgm_idx",
        "customer_company_trgm_idx",
    }
    assert all("gin_trgm_ops" in definition for definition in indexes.values())
    assert _without_pending_list(indexes)
    assert "customer_name_trgm_idx" in plan


@pytest.mark.parametrize("inline_ids", [500, 0], ids=["customer-ids", "customer-join"])
def test_search_finds_licenses_by_customer_id_or_name_module_notes_and_id(
    reader, make_license, customer, monkeypatch, inline_ids
):
    from customers.services import customer_create
    from licensing import api

    monkeypatch.setattr(api, "SEARCH_CUSTOMER_IDS", inline_ids)

    other = customer_create(actor="user:t", id="ZETA-9", name="Zeta Works", email="z@z.example")
    by_customer = make_license(customer_id=other.id)
    by_notes = make_license(notes="Renewal for the Flagship plant")
    by_module = make_license(module_name="biz4a_fleet")
    for term, expected in [
        ("zeta-9", by_customer),
        ("ZETA WORKS", by_customer),
        ("flagship", by_notes),
        ("FLEET", by_module),
        (str(by_notes.id), by_notes),
    ]:
        rows = reader.get(URL, {"search": term}).json()["results"]
        assert [row["id"] for row in rows] == [str(expected.id)], term
