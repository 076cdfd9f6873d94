"""Admin for partners, their API keys and agreements.

Secrets stay out of every page: the signing secret is write-only, API keys exist only
as hashes, and a newly made key or secret is shown once, on a page rendered in the same
response (so it is never parked in a message cookie or a session row). Every change made
here is written to the audit log in the admin's own transaction.
"""

from __future__ import annotations

import functools
import secrets
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template import engines
from django.template.backends.django import Template
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from audit.admin_changes import AuditedAdmin as BaseAuditedAdmin
from incidents.catalogue import EVENT_TYPES, POLICY_RANK, PartnerKind, SharePolicy
from partners.models import Agreement, AgreementEventType, ApiKey, CapEventMapping, Partner
from partners.services import api_key_create, api_key_revoke

SECRET_MIN_LENGTH = 16
KEY_INLINE_FIELDS = ("prefix", "name", "created_at", "last_used_at", "revoked_at")
KEY_FIELDS = ("prefix", "partner", "name", "created_at", "last_used_at", "revoked_at")
AGREEMENT_LINK_FIELDS = ("title", "valid_from", "valid_to", "max_share_minutes")

# Extends the admin's own base so the page looks like the rest of the admin; kept here
# rather than as a template file because it is only ever this one small page.
SHOWN_ONCE_PAGE = """{% extends "admin/base_site.html" %}
{% block content %}<div id="content-main">
<p>{{ note }}</p>
<p><a href="{{ back_url }}">{{ back_label }}</a></p>
</div>{% endblock %}"""


@functools.cache
def shown_once_template() -> Template:
    return engines["django"].from_string(SHOWN_ONCE_PAGE)  # type: ignore[return-value]


def event_type_errors(
    *, partner_kind: str | None, event_type: str, share_policy: str, allow_clips: bool = False
) -> dict[str, str]:
    """Why `event_type` at `share_policy` may not be in an agreement of a `partner_kind` partner.

    The catalogue (DESIGN §3) is the legal ceiling: an agreement may narrow a type's
    policy, never widen it, and a partner only sends its own kind's types. Saved clips
    go out only through a share back to the sender, so only with a policy that makes one.
    """
    entry = EVENT_TYPES.get(event_type)
    if entry is None or share_policy not in SharePolicy.values:
        return {}  # the field's choices already reject it
    errors = {}
    if partner_kind and entry.kind != partner_kind:
        errors["event_type"] = (
            f"협약 상대 기관의 유형({PartnerKind(partner_kind).label})과 맞지 않는 이벤트입니다 / "
            f"{event_type} is sent by {entry.kind} partners, not {partner_kind}"
        )
    if POLICY_RANK[SharePolicy(share_policy)] > POLICY_RANK[entry.policy]:
        errors["share_policy"] = (
            "법적 근거보다 넓은 공유 정책은 허용되지 않습니다 / wider than the catalogue allows "
            f"(≤ {entry.policy.label})"
        )
    if allow_clips and share_policy not in (SharePolicy.ON_EVENT, SharePolicy.CURFEW_WINDOW):
        errors["allow_clips"] = (
            "영상 공유가 없는 정책에는 녹화영상을 허용할 수 없습니다 / "
            "clips go out only through a share to the sender, which this policy never makes"
        )
    return errors


class AuditedAdmin(BaseAuditedAdmin):
    """The audited admin, plus the page that shows a new key or secret once."""

    def shown_once_response(
        self, request: HttpRequest, *, title: str, lines: list[str], back_url: str
    ) -> HttpResponse:
        """A page showing `lines` (a new key or secret) as messages, consumed by this very render."""
        for line in lines:
            messages.success(request, line)
        context = {
            **self.admin_site.each_context(request),
            "title": title,
            "note": _(
                "이 값은 다시 표시되지 않습니다. 지금 안전한 곳에 보관하세요. / It is not shown again: store it now."
            ),
            "back_url": back_url,
            "back_label": _("돌아가기 / Back"),
            "opts": self.opts,
        }
        response = TemplateResponse(request, shown_once_template(), context)
        response["Cache-Control"] = "no-store"
        return response


# --- Partner -------------------------------------------------------------------------


class WriteOnlySecretField(forms.CharField):
    """A secret typed in a password box: changed only when something was typed."""

    def has_changed(self, initial: Any, data: Any) -> bool:
        return bool(data)


class PartnerAdminForm(forms.ModelForm):
    """Keeps the signing secret write-only: the page never contains the stored value."""

    signing_secret = WriteOnlySecretField(
        label=_("signing secret"),
        required=False,
        max_length=128,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password", "size": 60}),
        help_text=_("비워 두면 현재 값을 유지합니다 / leave empty to keep the current secret."),
    )
    webhook_url = forms.URLField(
        label=_("webhook URL"), required=False, max_length=200, assume_scheme="https"
    )
    generate_signing_secret = forms.BooleanField(
        label=_("새 서명 비밀키 생성 / generate a new signing secret"),
        required=False,
        help_text=_("저장 후 한 번만 표시됩니다 / shown once after saving."),
    )
    clear_signing_secret = forms.BooleanField(
        label=_("서명 비밀키 삭제 / remove the signing secret"), required=False
    )

    class Meta:
        model = Partner
        fields = "__all__"  # noqa: DJ007 -- the ModelAdmin decides which fields show

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.generated_signing_secret = False

    def clean(self) -> dict[str, Any]:
        # In clean(), not clean_signing_secret(): the checkboxes come after the secret
        # field, so they are not yet in cleaned_data when the field itself is cleaned.
        cleaned = super().clean() or {}
        typed = cleaned.get("signing_secret", "")
        generate, remove = cleaned.get("generate_signing_secret"), cleaned.get("clear_signing_secret")
        if sum(map(bool, (typed, generate, remove))) > 1:
            raise forms.ValidationError(
                _("비밀키 입력, 생성, 삭제 중 하나만 선택하세요 / type, generate or remove: pick one.")
            )
        if generate:
            cleaned["signing_secret"] = secrets.token_urlsafe(32)
            self.generated_signing_secret = True
        elif remove:
            cleaned["signing_secret"] = ""
        elif not typed:
            cleaned["signing_secret"] = self.instance.signing_secret
        elif len(typed) < SECRET_MIN_LENGTH:
            self.add_error(
                "signing_secret",
                f"{SECRET_MIN_LENGTH}자 이상이어야 합니다 / at least {SECRET_MIN_LENGTH} characters.",
            )
        return cleaned


class CapEventMappingForm(forms.ModelForm):
    class Meta:
        model = CapEventMapping
        fields = ["cap_event", "cap_category", "event_type"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        partner = cleaned.get("partner")
        entry = EVENT_TYPES.get(cleaned.get("event_type", ""))
        if partner is not None and partner.kind and entry is not None and entry.kind != partner.kind:
            self.add_error(
                "event_type",
                f"이 기관 유형이 보낼 수 없는 이벤트입니다 / {entry.code} is not a {partner.kind} event type",
            )
        return cleaned


class CapEventMappingInline(admin.TabularInline):
    model = CapEventMapping
    form = CapEventMappingForm
    extra = 0


class ApiKeyInline(admin.TabularInline):
    """The partner's keys, read-only; the hash is never shown. Revoke them on the API key page."""

    model = ApiKey
    fields = KEY_INLINE_FIELDS
    readonly_fields = KEY_INLINE_FIELDS
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class AgreementLinkInline(admin.TabularInline):
    """The partner's agreements, for navigation; they are edited on their own page."""

    model = Agreement
    fields = AGREEMENT_LINK_FIELDS
    readonly_fields = AGREEMENT_LINK_FIELDS
    extra = 0
    show_change_link = True
    verbose_name_plural = _("agreements (edit on the agreement page)")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Partner)
class PartnerAdmin(AuditedAdmin):
    form = PartnerAdminForm
    list_display = [
        "name",
        "slug",
        "kind",
        "is_active",
        "signs_requests",
        "active_keys",
        "rate_limit_per_minute",
    ]
    list_filter = ["kind", "is_active"]
    search_fields = ["name", "slug", "contact"]
    readonly_fields = ["signing_secret_state", "created_at"]
    fieldsets = [
        (None, {"fields": ["kind", "slug", "name", "contact", "is_active", "created_at"]}),
        (_("API"), {"fields": ["rate_limit_per_minute", "webhook_url"]}),
        (
            _("서명 / request signing"),
            {
                "fields": [
                    "signing_secret_state",
                    "signing_secret",
                    "generate_signing_secret",
                    "clear_signing_secret",
                ]
            },
        ),
    ]
    inlines = [ApiKeyInline, AgreementLinkInline, CapEventMappingInline]
    actions = ["create_api_key"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Partner]:
        return (
            super()
            .get_queryset(request)
            .annotate(num_active_keys=Count("api_keys", filter=Q(api_keys__revoked_at__isnull=True)))
        )

    @admin.display(description=_("active keys"), ordering="num_active_keys")
    def active_keys(self, obj: Partner) -> int:
        return int(getattr(obj, "num_active_keys", 0))

    @admin.display(description=_("signs requests"), boolean=True)
    def signs_requests(self, obj: Partner) -> bool:
        return bool(obj.signing_secret)

    @admin.display(description=_("current signing secret"))
    def signing_secret_state(self, obj: Partner) -> str:
        return str(
            _("설정됨 (값은 표시하지 않음) / set (not shown)") if obj.signing_secret else _("없음 / none")
        )

    def changed_fields(self, form: forms.ModelForm) -> list[str]:
        secret_inputs = {"signing_secret", "generate_signing_secret", "clear_signing_secret"}
        changed = [name for name in form.changed_data if name not in secret_inputs]
        if secret_inputs & set(form.changed_data):
            changed.append("signing_secret")
        return changed

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        # Read back by response_add/response_change, in this same request only.
        obj._signing_secret_generated = form.generated_signing_secret

    def response_add(
        self, request: HttpRequest, obj: Any, post_url_continue: str | None = None
    ) -> HttpResponse:
        if getattr(obj, "_signing_secret_generated", False):
            return self.signing_secret_page(request, obj)
        return super().response_add(request, obj, post_url_continue)

    def response_change(self, request: HttpRequest, obj: Any) -> HttpResponse:
        if getattr(obj, "_signing_secret_generated", False):
            return self.signing_secret_page(request, obj)
        return super().response_change(request, obj)

    def signing_secret_page(self, request: HttpRequest, obj: Partner) -> HttpResponse:
        return self.shown_once_response(
            request,
            title=str(_("새 서명 비밀키 / new signing secret")),
            lines=[f"{obj} ({obj.slug}) 서명 비밀키 / signing secret: {obj.signing_secret}"],
            back_url=reverse("admin:partners_partner_change", args=[obj.pk]),
        )

    @admin.action(description=_("API 키 발급 / create API key"), permissions=["change"])
    def create_api_key(self, request: HttpRequest, queryset: QuerySet[Partner]) -> HttpResponse:
        actor = f"user:{request.user.get_username()}"
        name = f"admin {timezone.localdate():%Y-%m-%d}"
        lines = []
        for partner in queryset.order_by("slug"):
            _key, raw = api_key_create(partner=partner, name=name, actor=actor)
            lines.append(f"{partner} ({partner.slug}) API key: {raw}")
        return self.shown_once_response(
            request,
            title=str(_("새 API 키 / new API keys")),
            lines=lines,
            back_url=reverse("admin:partners_partner_changelist"),
        )


# --- API keys ------------------------------------------------------------------------


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are made with the partner page's action (or `partner_key`), and revoked here."""

    list_display = ["prefix", "partner", "name", "created_at", "last_used_at", "revoked_at", "is_active"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "partner"]
    search_fields = ["prefix", "name", "partner__name", "partner__slug"]
    list_select_related = ["partner"]
    fields = KEY_FIELDS
    readonly_fields = KEY_FIELDS
    actions = ["revoke_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiKey]:
        return super().get_queryset(request).defer("key_hash")

    @admin.display(description=_("active"), boolean=True)
    def is_active(self, obj: ApiKey) -> bool:
        return obj.is_active

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # nothing to edit: a key is made, used and revoked, never changed

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # revoke instead: the row is what tells a later reader which key it was

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("partners.change_apikey")

    @admin.action(description=_("선택한 키 폐기 / revoke selected keys"), permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        actor = f"user:{request.user.get_username()}"
        keys = list(queryset.filter(revoked_at__isnull=True))
        for key in keys:
            api_key_revoke(key=key, actor=actor)
        messages.success(request, f"{len(keys)}개 키 폐기 / {len(keys)} key(s) revoked.")


# --- Agreements ----------------------------------------------------------------------


class AgreementEventTypeForm(forms.ModelForm):
    class Meta:
        model = AgreementEventType
        fields = ["event_type", "share_policy", "allow_clips"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        # The inline's foreign-key field hands back the agreement being edited (or added).
        agreement = cleaned.get("agreement")
        partner = getattr(agreement, "partner", None)
        errors = event_type_errors(
            partner_kind=partner.kind if partner is not None else None,
            event_type=cleaned.get("event_type", ""),
            share_policy=cleaned.get("share_policy", ""),
            allow_clips=bool(cleaned.get("allow_clips")),
        )
        for field, message in errors.items():
            self.add_error(field, message)
        return cleaned


class AgreementEventTypeInline(admin.TabularInline):
    model = AgreementEventType
    form = AgreementEventTypeForm
    extra = 0


class AgreementAdminForm(forms.ModelForm):
    class Meta:
        model = Agreement
        fields = "__all__"  # noqa: DJ007 -- the ModelAdmin decides which fields show

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("valid_from"), cleaned.get("valid_to")
        if start and end and end < start:
            self.add_error("valid_to", _("시작일보다 앞설 수 없습니다 / must not be before the start date."))
        return cleaned


@admin.register(Agreement)
class AgreementAdmin(AuditedAdmin):
    form = AgreementAdminForm
    list_display = ["title", "partner", "valid_from", "valid_to", "max_share_minutes", "allowed_types"]
    list_filter = ["partner__kind", "partner"]
    search_fields = ["title", "partner__name", "partner__slug"]
    list_select_related = ["partner"]
    filter_horizontal = ["centers"]
    readonly_fields = ["created_at"]
    inlines = [AgreementEventTypeInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Agreement]:
        return super().get_queryset(request).prefetch_related("event_types")

    @admin.display(description=_("allowed event types"))
    def allowed_types(self, obj: Agreement) -> str:
        return ", ".join(t.event_type for t in obj.event_types.all())


from partners import admin_shares  # noqa: E402, F401  (shares and webhook log, read-only)
