"""`/audit/ledger/`: the provision ledger as a paginated page, or `?format=csv` streamed.

For privacy officers and administrators; others get 403, anonymous users the login page.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django import forms
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET

from audit.ledger import (
    COLUMNS,
    KIND_LABELS,
    KINDS,
    LedgerFilters,
    ledger_entries,
    ledger_rows,
    ledger_rows_stream,
)
from audit.services import audit_record
from cameras.models import StaffRole
from incidents.selectors import staff_of

UTF8_BOM = "\ufeff"
# A cell starting with one of these is a formula to Excel: prefix it so it stays text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class LedgerFilterForm(forms.Form):
    date_from = forms.DateField(
        label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    kind = forms.ChoiceField(
        label=_("Kind"), required=False, choices=[("", "—"), *((k, KIND_LABELS[k]) for k in KINDS)]
    )
    partner = forms.SlugField(label=_("Partner"), required=False, max_length=60)
    camera = forms.IntegerField(label=_("Camera id"), required=False, min_value=1, max_value=2**31 - 1)
    incident = forms.IntegerField(label=_("Incident id"), required=False, min_value=1, max_value=2**31 - 1)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            raise forms.ValidationError(_("The start date is after the end date."))
        return data

    def filters(self) -> LedgerFilters:
        data = self.cleaned_data
        return LedgerFilters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to"),
            kind=data.get("kind") or "",
            partner=data.get("partner") or "",
            camera_id=data.get("camera"),
            incident_id=data.get("incident"),
        )


def ledger_viewable_by(request: HttpRequest) -> bool:
    user = request.user
    if getattr(user, "is_superuser", False):
        return True
    staff = staff_of(user)
    return staff is not None and staff.role in (StaffRole.PRIVACY_OFFICER, StaffRole.ADMIN)


@login_required
@require_GET
def ledger(request: HttpRequest) -> HttpResponseBase:
    if not ledger_viewable_by(request):
        return HttpResponse(_("The ledger is for privacy officers and administrators."), status=403)
    form = LedgerFilterForm(request.GET)
    wants_csv = request.GET.get("format") == "csv"
    if not form.is_valid():
        if wants_csv:
            return JsonResponse({"errors": form.errors.get_json_data()}, status=400)
        return render(request, "audit/ledger.html", {"form": form, "columns": COLUMNS}, status=400)
    filters = form.filters()
    if wants_csv:
        return ledger_csv(request, filters)
    page = Paginator(ledger_entries(filters=filters), int(settings.LEDGER_PAGE_SIZE)).get_page(
        request.GET.get("page")
    )
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "form": form,
        "columns": COLUMNS,
        "page": page,
        "rows": ledger_rows(list(page.object_list)),
        "query": query.urlencode(),
    }
    return render(request, "audit/ledger.html", context)


def ledger_csv(request: HttpRequest, filters: LedgerFilters) -> StreamingHttpResponse:
    """The ledger as CSV, UTF-8 with a BOM (Excel then reads Korean right), streamed in chunks."""
    audit_record(
        action="ledger.exported",
        actor=f"user:{request.user.get_username()}",
        user_id=request.user.pk,
        details={"filters": {k: v for k, v in vars(filters).items() if v not in (None, "")}},
        request_id=str(getattr(request, "request_id", "")),
    )
    # Under Daphne a synchronous iterator would be read into memory whole before the
    # first byte goes out; an asynchronous one really streams.
    content = csv_async(filters) if isinstance(request, ASGIRequest) else csv_sync(filters)
    response = StreamingHttpResponse(content, content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y%m%d-%H%M")
    response["Content-Disposition"] = f'attachment; filename="ledger-{stamp}.csv"'
    response["Cache-Control"] = "no-store"
    return response


class LineBuffer:
    """csv.writer writes into this; `take()` returns what it wrote since the last call."""

    def __init__(self) -> None:
        self.parts: list[str] = []

    def write(self, text: str) -> int:
        self.parts.append(text)
        return len(text)

    def take(self) -> str:
        text, self.parts = "".join(self.parts), []
        return text


def safe_cell(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def csv_chunks(chunks: Iterator[list[Any]]) -> Iterator[str]:
    buffer = LineBuffer()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    yield UTF8_BOM + buffer.take()
    for rows in chunks:
        writer.writerows([safe_cell(cell) for cell in row.cells()] for row in rows)
        yield buffer.take()


def csv_sync(filters: LedgerFilters) -> Iterator[str]:
    return csv_chunks(ledger_rows_stream(filters=filters))


async def csv_async(filters: LedgerFilters) -> AsyncIterator[str]:
    chunks = csv_sync(filters)
    # Each chunk's queries run on Django's sync thread, one chunk at a time.
    take = sync_to_async(lambda: next(chunks, None), thread_sensitive=True)
    while (text := await take()) is not None:
        yield text
