from __future__ import annotations

from django.db.models import QuerySet

from customers.models import Customer


def customer_list() -> QuerySet[Customer]:
    return Customer.objects.all()


def customer_get(customer_id: str) -> Customer | None:
    return Customer.objects.filter(pk=customer_id).first()
