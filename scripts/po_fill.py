"""Fill or correct Korean translations in locale/ko/LC_MESSAGES/django.po.

Usage: .venv/bin/python scripts/po_fill.py   (then: manage.py compilemessages -l ko)
makemessages marks near-matches "fuzzy" with a guessed translation that is often wrong
(e.g. "valid to" → "담당"); entries listed here get the right text and lose the flag.
Only entries without a msgctxt are touched.
"""

from __future__ import annotations

import re
from pathlib import Path

PO = Path(__file__).resolve().parent.parent / "locale" / "ko" / "LC_MESSAGES" / "django.po"

KO = {
    "action": "작업",
    "request id": "요청 ID",
    "timeline": "처리 이력",
    "ranked cameras": "가까운 카메라",
    "location fixes": "위치 기록",
    "police 112": "경찰 112",
    "fire 119": "소방 119",
    "new": "신규",
    "acknowledged": "접수",
    "dispatch requested": "출동 요청",
    "closed": "종결",
    "cancelled by partner": "신고 기관 취소",
    "outside every jurisdiction": "관할 구역 밖",
    "summary": "내용",
    "occurred at": "발생 시각",
    "received at": "수신 시각",
    "acknowledged at": "접수 시각",
    "escalated at": "격상 시각",
    "closed at": "종결 시각",
    "outcome": "처리 결과",
    "incident": "사건",
    "incidents": "사건",
    "received": "수신",
    "location update": "위치 갱신",
    "assigned": "배정",
    "note": "메모",
    "escalated": "격상",
    "video share": "영상 공유",
    "signs requests": "요청 서명 사용",
    "partner": "연계 기관",
    "partners": "연계 기관",
    "created": "생성",
    "last used": "최근 사용",
    "valid to": "종료일",
    "centres covered": "대상 관제센터",
    "object": "대상",
    "time": "시각",
    "actor": "행위자",
    "object type": "대상 종류",
    "object id": "대상 ID",
    "details": "상세",
    "audit entry": "감사 기록",
    "audit entries": "감사 기록",
    "lat, lon": "위도, 경도",
    "disaster safety room": "재난안전상황실",
    "Ministry of Justice tracking centre": "법무부 위치추적관제센터",
    "safety app": "안심 앱",
    "telecom": "통신사",
    "private security company": "민간 보안업체",
    "fire sensor": "화재 감지기",
    "never": "제공 안 함",
    "operator search only": "관제요원 검색만",
    "to police/fire after operator confirmation": "관제요원 확인 후 경찰·소방에 제공",
    "on event, inside the curfew window only": "이벤트 시 (외출제한 시간대만)",
    "on event": "이벤트 시 제공",
    "external id": "외부 ID",
    "type": "유형",
    "priority": "우선순위",
    "accuracy (m)": "정확도 (m)",
    "subject": "대상자",
    "signing secret": "서명 비밀키",
    "webhook URL": "웹훅 URL",
    "agreements (edit on the agreement page)": "협약 (협약 화면에서 수정)",
    "API": "API",
    "active keys": "사용 중인 키",
    "current signing secret": "현재 서명 비밀키",
    "active": "사용",
    "allowed event types": "허용 이벤트 유형",
    "kind": "종류",
    "contact": "연락처",
    "rate limit (requests/minute)": "요청 한도 (분당)",
    "prefix": "접두어",
    "revoked": "폐기",
    "API key": "API 키",
    "API keys": "API 키",
    "title": "제목",
    "valid from": "시작일",
    "curfew start": "외출제한 시작",
    "curfew end": "외출제한 종료",
    "maximum share (minutes)": "최대 공유 시간 (분)",
    "Empty: every centre.": "비워 두면 모든 관제센터.",
    "agreement": "협약",
    "agreements": "협약",
    "event type": "이벤트 유형",
    "share policy": "영상 제공 정책",
    "allowed event type": "허용 이벤트 유형",
    "CAP event": "CAP 이벤트",
    "CAP category": "CAP 분류",
    "Empty: any.": "비워 두면 모두.",
    "CAP mapping": "CAP 매핑",
    "CAP mappings": "CAP 매핑",
    "Login locked": "로그인이 잠겼습니다",
    "Too many failed logins. Try again later or ask your supervisor to unlock the account.": "로그인 실패가 너무 많습니다. 잠시 후 다시 시도하거나 관제팀장에게 잠금 해제를 요청하세요.",
    "Incident queue": "사건 목록",
}
# Admin strings written as "한국어 / English": the Korean half is the translation.
BILINGUAL = re.compile(r"^(?P<ko>[^/]*[가-힣][^/]*?) / .+$")


def translate(msgid: str) -> str | None:
    if msgid in KO:
        return KO[msgid]
    match = BILINGUAL.match(msgid)
    return match.group("ko").strip() if match else None


def fill(text: str) -> tuple[str, int]:
    entries = text.split("\n\n")
    changed = 0
    for index, entry in enumerate(entries):
        if re.search(r"^msgctxt ", entry, re.M) or 'msgid ""\nmsgstr ""\n"Project' in entry:
            continue
        match = re.search(r'^msgid "(.*)"\nmsgstr "(.*)"$', entry, re.M)
        if not match:
            continue
        korean = translate(match.group(1))
        if korean is None or (match.group(2) and "#, fuzzy" not in entry):
            continue
        entry = entry.replace(match.group(0), f'msgid "{match.group(1)}"\nmsgstr "{korean}"')
        entry = re.sub(r"^#, fuzzy\n", "", entry, flags=re.M).replace(", fuzzy", "")
        entry = re.sub(r"^#\| (msgctxt|msgid) .*\n", "", entry, flags=re.M)
        entries[index] = entry
        changed += 1
    return "\n\n".join(entries), changed


if __name__ == "__main__":
    new_text, count = fill(PO.read_text(encoding="utf-8"))
    PO.write_text(new_text, encoding="utf-8")
    print(f"{count} entries filled")
