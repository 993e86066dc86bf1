"""API keys in the back-office: create (the key is shown once), list, revoke — all audited
through aegis.services. Only the prefix is ever displayed; the hash is not a secret worth
showing and the key itself is never stored."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import quote, unquote
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from rest_framework_api_key.models import APIKey as LibraryAPIKey

from aegis.core.adminkit import ServiceAdmin, ServiceForm, actor_for
from aegis.core.exceptions import DomainError
from aegis.models import APIKey
from aegis.services import APIKeyAlreadyRevoked, api_key_create, api_key_revoke

# The library's own concrete model is unused: our scoped `aegis.APIKey` replaces it.
if admin.site.is_registered(LibraryAPIKey):
    admin.site.unregister(LibraryAPIKey)


class APIKeyCreateForm(ServiceForm):
    class Meta:
        model = APIKey
        fields = ["name", "scope"]
        help_texts = {"name": "Who uses the key, e.g. erp-integration. Shown in the audit log."}

    def perform(self, actor: str) -> APIKey:
        api_key, raw = api_key_create(
            actor=actor, name=self.cleaned_data["name"], scope=self.cleaned_data["scope"]
        )
        api_key.raw_key = raw  # in memory only: shown once on the next page, never stored
        return api_key


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("revoked", "Revoked")]

    def queryset(self, request, queryset):
        if self.value() in {"active", "revoked"}:
            return queryset.filter(revoked=self.value() == "revoked")
        return queryset


class PrefixChangeList(ChangeList):
    def url_for_result(self, result):
        return reverse("admin:aegis_apikey_change", args=[result.prefix])


@admin.register(APIKey)
class APIKeyAdmin(ServiceAdmin):
    """Keys are addressed by their prefix in every URL and form: the library's primary key
    embeds the hash, which has no business in URLs, logs or pages."""

    form = APIKeyCreateForm
    list_display = ("name", "prefix_display", "scope_code", "created_on", "last_used", "state")
    list_filter = (StateFilter, "scope")
    search_fields = ("name", "=prefix")
    ordering = ("-created",)
    radio_fields = {"scope": admin.VERTICAL}
    actions = ["revoke_selected"]
    readonly_fields = (
        "name",
        "prefix_display",
        "scope",
        "created",
        "last_used_at",
        "state",
        "revoked_at",
    )

    def get_fields(self, request, obj=None):
        return ["name", "scope"] if obj is None else list(self.readonly_fields)

    # --- addressing by prefix ----------------------------------------------------------------

    def get_object(self, request, object_id, from_field=None):
        if "$" in object_id:  # a primary key, e.g. from an old "recent actions" link
            return super().get_object(request, object_id, from_field)
        return self.get_queryset(request).filter(prefix=object_id).first()

    def get_changelist(self, request, **kwargs):
        return PrefixChangeList

    def action_checkbox(self, obj):
        checkbox = forms.CheckboxInput({"class": "action-select"}, lambda value: False)
        return checkbox.render(admin.helpers.ACTION_CHECKBOX_NAME, obj.prefix)

    def changelist_view(self, request, extra_context=None):
        name = admin.helpers.ACTION_CHECKBOX_NAME
        if request.method == "POST" and name in request.POST:
            # Actions select keys by prefix; Django's action machinery filters by pk.
            post = request.POST.copy()
            prefixes = post.getlist(name)
            pks = dict(APIKey.objects.filter(prefix__in=prefixes).values_list("prefix", "pk"))
            post.setlist(name, [pks.get(prefix, prefix) for prefix in prefixes])
            request.POST = post
        return super().changelist_view(request, {"title": "API keys"} | (extra_context or {}))

    def history_view(self, request, object_id, extra_context=None):
        api_key = self.get_object(request, unquote(object_id))
        if api_key is not None:
            object_id = quote(api_key.pk)  # the history is recorded under the primary key
        return super().history_view(request, object_id, extra_context)

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    # A key is created or revoked, never edited nor deleted (its audit rows name it).
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_revoke_permission(self, request, obj=None):
        return request.user.has_perm("aegis.change_apikey")

    @admin.display(description="Prefix", ordering="prefix")
    def prefix_display(self, obj: APIKey) -> str:
        return format_html('<span class="aegis-mono">{}.…</span>', obj.prefix)

    @admin.display(description="Scope", ordering="scope")
    def scope_code(self, obj: APIKey) -> str:
        return format_html('<span class="aegis-mono">{}</span>', obj.scope)

    @admin.display(description="Created", ordering="created")
    def created_on(self, obj: APIKey) -> str:
        return timezone.localtime(obj.created).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Last used", ordering="last_used_at")
    def last_used(self, obj: APIKey) -> str:
        if obj.last_used_at is None:
            return format_html('<span class="aegis-muted">{}</span>', "never")
        return timezone.localtime(obj.last_used_at).strftime("%Y-%m-%d %H:%M")

    @admin.display(description="State", ordering="revoked")
    def state(self, obj: APIKey) -> str:
        if obj.revoked:
            when = f" {obj.revoked_at:%Y-%m-%d}" if obj.revoked_at else ""
            return format_html(
                '<span class="aegis-badge aegis-badge-revoked">revoked{}</span>', when
            )
        return format_html('<span class="aegis-badge aegis-badge-{}">{}</span>', "active", "active")

    def add_view(self, request, form_url="", extra_context=None):
        extra_context = {"title": "Create an API key"} | (extra_context or {})
        return super().add_view(request, form_url, extra_context)

    def response_add(self, request, obj, post_url_continue=None):
        """The one and only time the key is shown: rendered straight into this response,
        never put in a message, a session or a redirect URL."""
        context = {
            **self.admin_site.each_context(request),
            "title": "API key created",
            "opts": self.model._meta,
            "api_key": obj,
            "raw_key": obj.raw_key,
        }
        response = TemplateResponse(request, "admin/aegis/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        api_key = self.get_object(request, unquote(object_id))
        if api_key is not None:
            extra_context = {
                "can_revoke": self.has_revoke_permission(request) and not api_key.revoked,
                "revoke_url": reverse("admin:aegis_apikey_revoke", args=[api_key.prefix]),
            } | (extra_context or {})
        return super().change_view(request, object_id, form_url, extra_context)

    # --- revoke --------------------------------------------------------------------------

    def get_urls(self):
        return [
            path(
                "<path:object_id>/revoke/",
                self.admin_site.admin_view(self.revoke_view),
                name="aegis_apikey_revoke",
            ),
            *super().get_urls(),
        ]

    def revoke_view(self, request, object_id):
        if not self.has_revoke_permission(request):
            raise PermissionDenied
        api_key = self.get_object(request, unquote(object_id))
        if api_key is None:
            raise Http404("No API key with this id.")
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            self._revoke(request, [api_key])
            return HttpResponseRedirect(reverse("admin:aegis_apikey_change", args=[api_key.prefix]))
        return self._render_confirmation(request, [api_key], bulk=False)

    @admin.action(description="Revoke selected API keys…", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        if request.POST.get("confirm") == "yes":
            self._revoke(request, list(queryset))
            return None
        return self._render_confirmation(request, list(queryset), bulk=True)

    def _revoke(self, request, keys: list[APIKey]) -> None:
        actor = actor_for(request)
        revoked = already = 0
        for api_key in keys:
            try:
                api_key_revoke(actor=actor, prefix=api_key.prefix)
            except APIKeyAlreadyRevoked:
                already += 1
            except DomainError as exc:
                messages.error(request, f"{api_key.name}: {exc.detail}")
            else:
                revoked += 1
        if revoked:
            messages.success(
                request,
                f"Revoked {revoked} API key{'s' if revoked != 1 else ''}: "
                "requests using it are refused from now on.",
            )
        if already:
            messages.warning(request, f"{already} already revoked: nothing changed.")

    def _render_confirmation(self, request, keys: list[APIKey], *, bulk: bool):
        context = {
            **self.admin_site.each_context(request),
            "title": "Revoke API key" if len(keys) == 1 else f"Revoke {len(keys)} API keys",
            "opts": self.model._meta,
            "keys": keys,
            "to_revoke": [k for k in keys if not k.revoked],
            "bulk": bulk,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
            "cancel_url": request.get_full_path()
            if bulk
            else reverse("admin:aegis_apikey_change", args=[keys[0].prefix]),
        }
        return TemplateResponse(request, "admin/aegis/apikey/revoke_confirmation.html", context)
