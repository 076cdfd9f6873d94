"""Request middleware of the project."""

from __future__ import annotations

import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import translation


class ExplicitLanguageMiddleware:
    """Korean unless the user chose another language with the switch.

    Django's LocaleMiddleware follows the browser's Accept-Language, which would show
    English to a Korean operator whose browser happens to be set to English. The control
    room's language is a setting (LANGUAGE_CODE); only the explicit switch (the language
    cookie) changes it.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.supported = {code for code, _ in settings.LANGUAGES}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        chosen = request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME)
        language = chosen if chosen in self.supported else settings.LANGUAGE_CODE
        translation.activate(language)
        request.LANGUAGE_CODE = language
        response = self.get_response(request)
        response.headers.setdefault("Content-Language", language)
        return response


class RequestIdMiddleware:
    """Gives every request an id (the caller's X-Request-ID when sane) for logs and the audit log."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.META.get("HTTP_X_REQUEST_ID", "")
        sane = 0 < len(given) <= 64 and all(ch.isalnum() or ch in "-_." for ch in given)
        request.request_id = given if sane else uuid.uuid4().hex  # type: ignore[attr-defined]
        response = self.get_response(request)
        response.headers["X-Request-ID"] = request.request_id  # type: ignore[attr-defined]
        return response


class ApiBodyLimitMiddleware:
    """413 for partner API bodies over API_MAX_BODY_BYTES, before anything parses them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path.startswith("/api/v1/") and self.too_big(request):
            limit = settings.API_MAX_BODY_BYTES
            return JsonResponse({"errors": {"body": [f"body over {limit} bytes"]}}, status=413)
        return self.get_response(request)

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
