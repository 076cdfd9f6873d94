"""Login and the landing page: Korean by default, English on request, Seoul time."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_user("op1", password="pw-long-enough-123")


def test_login_page_is_a_standard_form_in_korean(client, db):
    response = client.get("/login/")

    html = response.content.decode()
    assert response.status_code == 200
    assert 'name="username"' in html and 'name="password"' in html
    assert "관제실 로그인" in html


def test_logging_in_leads_to_the_overview(client, operator, center_factory):
    center_factory("junggu", (126.96, 37.54, 127.03, 37.58), name="서울 중구")

    response = client.post("/login/", {"username": "op1", "password": "pw-long-enough-123"}, follow=True)

    assert response.redirect_chain[-1][0] == "/"
    assert response.templates[0].name == "incidents/dashboard.html"
    overview = client.get("/centres/").content.decode()
    assert "관제센터 현황" in overview
    assert "서울 중구" in overview


def test_wrong_password_is_refused_with_a_message(client, operator):
    response = client.post("/login/", {"username": "op1", "password": "nope"})
    assert response.status_code == 200
    assert "아이디 또는 비밀번호가 올바르지 않습니다" in response.content.decode()


def test_overview_needs_login(client, db):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")


def test_english_is_available(client, operator):
    client.force_login(operator)
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})

    html = client.get("/centres/").content.decode()

    assert "Control centres" in html
    assert 'lang="en"' in html


def test_times_are_shown_in_seoul_time(client, operator):
    client.force_login(operator)
    assert "KST" in client.get("/centres/").content.decode()


def test_korean_even_when_the_browser_asks_for_english(client, operator):
    client.force_login(operator)
    html = client.get("/centres/", HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9").content.decode()
    assert "관제센터 현황" in html


def test_repeated_wrong_passwords_lock_the_login(client, operator, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for _ in range(3):
        client.post("/login/", {"username": "op1", "password": "wrong"})

    locked = client.post("/login/", {"username": "op1", "password": "pw-long-enough-123"})

    assert locked.status_code == 429
    assert "로그인이 잠겼습니다" in locked.content.decode()
    assert "_auth_user_id" not in client.session


def test_a_successful_login_resets_the_failure_count(client, operator, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client.post("/login/", {"username": "op1", "password": "wrong"})
    client.post("/login/", {"username": "op1", "password": "wrong"})
    client.post("/login/", {"username": "op1", "password": "pw-long-enough-123"})
    client.logout()
    client.post("/login/", {"username": "op1", "password": "wrong"})

    assert client.post("/login/", {"username": "op1", "password": "pw-long-enough-123"}).status_code == 302


def test_logins_and_failed_logins_are_audited_without_the_password(client, operator):
    from audit.models import AuditEntry

    client.post("/login/", {"username": "op1", "password": "wrong-secret-guess"})
    client.post("/login/", {"username": "op1", "password": "pw-long-enough-123"})

    failed = AuditEntry.objects.get(action="auth.login_failed")
    assert failed.details["username"] == "op1"
    assert "wrong-secret-guess" not in str(failed.details)
    assert AuditEntry.objects.filter(action="auth.login", user=operator).count() == 1


def test_logout_everywhere_ends_every_session_of_the_user(operator):
    from django.test import Client

    desk, phone = Client(), Client()
    for device in (desk, phone):
        device.post("/login/", {"username": "op1", "password": "pw-long-enough-123"})
        assert device.get("/centres/").status_code == 200

    desk.post("/logout/everywhere/")

    assert desk.get("/centres/").status_code == 302
    assert phone.get("/centres/").status_code == 302
