"""`/api/v1/customers`: create, read, list, update (PATCH) and delete customers."""

from __future__ import annotations

from django.db.models import Q
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.response import Response

from aegis.core.api.authentication import actor_of
from aegis.core.api.filters import StableOrderingFilter, StrictBooleanFilter
from aegis.core.api.schema import BODY_ERRORS, PROTECTED, errors
from aegis.core.api.scopes import Scope
from aegis.core.api.serializers import StrictBooleanField, StrictCharField, StrictSerializer
from customers import services
from customers.models import Customer
from customers.selectors import customer_get, customer_list

ID_PATTERN = r"[A-Za-z0-9_-]{1,50}"


class CustomerSerializer(serializers.ModelSerializer):
    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "email",
            "company",
            "phone",
            "address",
            "notes",
            "is_active",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class _CustomerFields(StrictSerializer):
    name = StrictCharField(max_length=255)
    email = StrictCharField(max_length=254, help_text="A valid e-mail address.")
    company = StrictCharField(required=False, allow_blank=True, max_length=255)
    phone = StrictCharField(required=False, allow_blank=True, max_length=50)
    address = StrictCharField(required=False, allow_blank=True, max_length=2000)
    notes = StrictCharField(required=False, allow_blank=True, max_length=10_000)
    is_active = StrictBooleanField(required=False)


class CustomerCreateSerializer(_CustomerFields):
    id = StrictCharField(
        required=False,
        allow_null=True,
        max_length=50,
        help_text="`^[A-Za-z0-9_-]{1,50}$`; generated as `CUST-000123` when absent.",
    )


class CustomerUpdateSerializer(_CustomerFields):
    """PATCH: any subset of the fields; `id` cannot change."""

    name = StrictCharField(required=False, max_length=255)
    email = StrictCharField(required=False, max_length=254)


class CustomerFilter(filters.FilterSet):
    is_active = StrictBooleanFilter()
    search = filters.CharFilter(
        method="filter_search", max_length=200, label="Search id, name, e-mail, company"
    )
    ordering = StableOrderingFilter(fields=("id", "name", "created_at"))

    class Meta:
        model = Customer
        fields = []

    def filter_search(self, queryset, name, value):
        return queryset.filter(
            Q(id__icontains=value)
            | Q(name__icontains=value)
            | Q(email__icontains=value)
            | Q(company__icontains=value)
        )


@extend_schema_view(
    list=extend_schema(
        summary="List customers",
        responses={
            200: CustomerSerializer(many=True),
            **errors(400, 404, *PROTECTED, e404="A page past the last one."),
        },
    ),
    retrieve=extend_schema(
        summary="Get a customer",
        responses={200: CustomerSerializer, **errors(404, *PROTECTED)},
    ),
    create=extend_schema(
        summary="Create a customer",
        request=CustomerCreateSerializer,
        responses={
            201: CustomerSerializer,
            **errors(*BODY_ERRORS, 409, *PROTECTED, e409="The id is taken (`customer_exists`)."),
        },
    ),
    partial_update=extend_schema(
        summary="Update a customer",
        request=CustomerUpdateSerializer,
        responses={200: CustomerSerializer, **errors(*BODY_ERRORS, 404, *PROTECTED)},
    ),
    destroy=extend_schema(
        summary="Delete a customer",
        description="Only a customer that never held a license; deactivate the others.",
        responses={
            204: None,
            **errors(
                404,
                409,
                *PROTECTED,
                e409="The customer holds licenses (`customer_has_licenses`).",
            ),
        },
    ),
)
class CustomerViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Customers: readonly keys read, issuer keys also create, update and delete."""

    queryset = Customer.objects.all()
    serializer_class = CustomerSerializer
    filterset_class = CustomerFilter
    lookup_value_regex = ID_PATTERN
    read_scope = Scope.READONLY
    write_scope = Scope.ISSUER
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def get_queryset(self):
        return customer_list()

    def get_object(self):
        customer = customer_get(self.kwargs["pk"])
        if customer is None:
            raise services.CustomerNotFound()
        return customer

    def create(self, request):
        serializer = CustomerCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = services.customer_create(actor=actor_of(request), **serializer.validated_data)
        location = reverse("customer-detail", kwargs={"pk": customer.pk})
        return Response(
            CustomerSerializer(customer).data,
            status=status.HTTP_201_CREATED,
            headers={"Location": location},
        )

    def partial_update(self, request, pk=None):
        serializer = CustomerUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        customer = services.customer_update(
            actor=actor_of(request), customer_id=pk, **serializer.validated_data
        )
        return Response(CustomerSerializer(customer).data)

    def destroy(self, request, pk=None):
        services.customer_delete(actor=actor_of(request), customer_id=pk)
        return Response(status=status.HTTP_204_NO_CONTENT)
