"""Request middleware of the project."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation
from django.utils.translation import gettext as _
from whitenoise.middleware import WhiteNoiseMiddleware

from smartcity.logs import request_id_var

log = logging.getLogger(__name__)


class BothModesMiddleware:
    """A middleware that runs natively in a synchronous chain as well as an asynchronous one.

    Daphne serves each request synchronously in one pooled thread (smartcity/http.py),
    and WSGI and the test client do too; an asynchronous chain (Django's own ASGI
    handler) would otherwise hop to a thread and back for each middleware. Subclasses
    give `before` (may answer early) and `after`; both are cheap and never block.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if iscoroutinefunction(self):
            return self.call_async(request)
        early = self.before(request)
        if early is not None:
            return early
        return self.after(request, self.get_response(request))

    async def call_async(self, request: HttpRequest) -> HttpResponse:
        early = self.before(request)
        if early is not None:
            return early
        response: Awaitable[HttpResponse] = self.get_response(request)
        return self.after(request, await response)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        return response


class StaticFilesMiddleware(BothModesMiddleware, WhiteNoiseMiddleware):
    """WhiteNoise, able to sit in an asynchronous chain (WhiteNoise 6 is synchronous only).

    Looking a file up is a dictionary access; serving it returns a response that Django
    streams. Nothing here blocks the event loop.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        WhiteNoiseMiddleware.__init__(self, get_response)
        BothModesMiddleware.__init__(self, get_response)

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if self.autorefresh:
            static_file = self.find_file(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            return None
        response: HttpResponse = self.serve(static_file, request)
        return response


class ExplicitLanguageMiddleware(BothModesMiddleware):
    """Korean unless the user chose another language with the switch.

    Django's LocaleMiddleware follows the browser's Accept-Language, which would show
    English to a Korean operator whose browser happens to be set to English. The control
    room's language is a setting (LANGUAGE_CODE); only the explicit switch (the language
    cookie) changes it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        super().__init__(get_response)
        self.supported = {code for code, _ in settings.LANGUAGES}

    def before(self, request: HttpRequest) -> HttpResponse | None:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        language = chosen if chosen in self.supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response.headers.setdefault("Content-Language", request.LANGUAGE_CODE)
        return response


class RequestIdMiddleware(BothModesMiddleware):
    """Gives every request an id (the caller's X-Request-ID when sane) for logs and the audit log."""

    def before(self, request: HttpRequest) -> HttpResponse | None:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        sane = 0 < len(given) <= 64 and all(ch.isalnum() or ch in "-_." for ch in given)
        request.request_id = given if sane else uuid.uuid4().hex  # type: ignore[attr-defined]
        request_id_var.set(request.request_id)  # type: ignore[attr-defined]
        return None

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        response.headers["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response


class ApiBodyLimitMiddleware(BothModesMiddleware):
    """413 for partner API bodies over API_MAX_BODY_BYTES, before anything parses them.

    Under ASGI the body has already been received (spooled, capped) when this runs, so
    measuring it does not block.
    """

    def before(self, request: HttpRequest) -> HttpResponse | None:
        if request.path.startswith("/api/v1/") and self.too_big(request):
            limit = settings.API_MAX_BODY_BYTES
            return JsonResponse({"errors": {"body": [f"body over {limit} bytes"]}}, status=413)
        return None

    def too_big(self, request: HttpRequest) -> bool:
        limit = settings.API_MAX_BODY_BYTES
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit:
            return True
        # Chunked bodies declare no length: measure them (they are capped by Django's
        # DATA_UPLOAD_MAX_MEMORY_SIZE before they get here).
        try:
            return len(request.body) > limit
        except RequestDataTooBig:
            return True


class SecurityHeadersMiddleware(BothModesMiddleware):
    """Content-Security-Policy and Permissions-Policy on every response (Django sets the rest)."""

    def after(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        relaxed = request.path.startswith(settings.CSP_RELAXED_PATHS)
        policy = settings.CONTENT_SECURITY_POLICY_RELAXED if relaxed else settings.CONTENT_SECURITY_POLICY
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("Permissions-Policy", settings.PERMISSIONS_POLICY)
        return response


class DatabaseUnavailableMiddleware(BothModesMiddleware):
    """503 with Retry-After, not 500, while PostgreSQL is unreachable (restart, failover).

    A partner's system retries a 503 after `Retry-After` and knows nothing was stored;
    a 500 reads as "your request is broken". (Deadlocks and serialization failures are
    OperationalErrors too, and a retry is the right answer to them as well.) The pool
    replaces its dead connections by itself (smartcity/dbpool.py, `reconnect_timeout` in
    settings), so requests succeed again as soon as the database is back, no restart.
    """

    RETRY_AFTER_S = 5

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        log.warning("database unavailable: %s", type(exception).__name__)
        message = _("The database is not answering; try again shortly.")
        response: HttpResponse
        if request.path.startswith("/api/") or "text/html" not in request.headers.get("Accept", ""):
            response = JsonResponse({"errors": {"detail": [message]}}, status=503)
        else:
            response = HttpResponse(message, status=503, content_type="text/plain; charset=utf-8")
        response.headers["Retry-After"] = str(self.RETRY_AFTER_S)
        return response
