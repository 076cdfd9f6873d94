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
    "Log in or open a share link to see this camera.": "이 카메라를 보려면 로그인하거나 공유 링크를 여십시오.",
    "No such camera, or it has no video stream.": "해당 카메라가 없거나 영상 스트림이 없습니다.",
    "You may not see this camera.": "이 카메라를 볼 권한이 없습니다.",
    "The camera is offline.": "카메라가 오프라인입니다.",
    "From": "시작일",
    "To": "종료일",
    "Kind": "구분",
    "Camera id": "카메라 ID",
    "Incident id": "사건 ID",
    "The start date is after the end date.": "시작일이 종료일보다 늦습니다.",
    "The ledger is for privacy officers and administrators.": "관리대장은 개인정보 보호책임자와 관리자만 볼 수 있습니다.",
    "Provision ledger": "개인영상정보 관리대장",
    "Every viewing, provision and destruction of footage, from the hash-chained audit log. Times are Asia/Seoul.": "해시 체인 감사 기록에서 만든 영상 열람·제공·파기 내역입니다. 시각은 한국 표준시(Asia/Seoul)입니다.",
    "Filter": "조회",
    "Download CSV": "CSV 내려받기",
    "%(counter)s row": "%(counter)s건",
    "%(counter)s rows": "%(counter)s건",
    "No ledger rows match.": "조건에 맞는 관리대장 항목이 없습니다.",
    "Previous": "이전",
    "Next": "다음",
    "Page %(number)s of %(total)s": "%(total)s쪽 중 %(number)s쪽",
    "Reason for the legal hold change": "법적 보존 변경 사유",
    "Required when setting or clearing the legal hold; written to the audit log.": "법적 보존을 설정하거나 해제할 때 필수이며 감사 기록에 남습니다.",
    "A reason is required to set or clear a legal hold.": "법적 보존을 설정하거나 해제하려면 사유가 필요합니다.",
    "waiting to record": "녹화 대기",
    "recording": "녹화 중",
    "ready": "완료",
    "failed": "실패",
    "destroyed": "파기됨",
    "saved by": "저장자",
    "requested at": "요청 시각",
    "requested length (s)": "요청 길이(초)",
    "error": "오류",
    "footage from": "영상 시작",
    "footage until": "영상 종료",
    "file": "파일",
    "Relative to CLIP_STORAGE_DIR.": "CLIP_STORAGE_DIR 기준 상대 경로입니다.",
    "size (bytes)": "크기(바이트)",
    "SHA-256": "SHA-256",
    "expires at": "보존 만료 시각",
    "legal hold": "법적 보존",
    "legal hold reason": "법적 보존 사유",
    "legal hold by": "법적 보존 설정자",
    "legal hold since": "법적 보존 설정 시각",
    "destroyed at": "파기 시각",
    "saved clip": "저장 영상",
    "saved clips": "저장 영상",
    "Saved footage of open incidents will be destroyed within 24 hours": "진행 중인 사건의 저장 영상이 24시간 안에 파기됩니다",
    "Clip #%(id)s (%(camera)s) of incident #%(incident)s": "사건 #%(incident)s의 영상 #%(id)s (%(camera)s)",
    "expires": "만료",
    "An administrator can set a legal hold (with a reason) to keep a clip.": "영상을 보존하려면 관리자가 사유와 함께 법적 보존을 설정할 수 있습니다.",
    "Connecting…": "연결 중…",
    "Live": "실시간",
    "Camera offline": "카메라 오프라인",
    "Refused": "시청 거부됨",
    "Log in again to watch": "다시 로그인해야 볼 수 있습니다",
    "Not allowed to watch this camera": "이 카메라를 볼 권한이 없습니다",
    "No such camera": "없는 카메라입니다",
    "Codec not supported": "지원하지 않는 코덱",
    "This browser cannot play live video": "이 브라우저는 실시간 영상을 재생할 수 없습니다",
    "Live video": "실시간 영상",
    "Click a picture to enlarge it; click again to go back.": "영상을 누르면 크게 보고, 다시 누르면 돌아갑니다.",
    "Shared live video": "공유 실시간 영상",
    "Shared until": "공유 종료 시각",
    "Address": "주소",
    "Summary": "개요",
    "Location": "위치",
    "No camera near the subject right now.": "현재 대상 주변에 카메라가 없습니다.",
    "This share has ended.": "영상 공유가 종료되었습니다.",
    "Video player unavailable.": "영상 플레이어를 사용할 수 없습니다.",
    "Video shares": "영상 공유",
    "Share with": "공유 대상",
    "Reason (required to relay)": "사유 (타 기관 전달 시 필수)",
    "Share now": "지금 공유",
    "Extend 15 min": "15분 연장",
    "Revoke": "철회",
    "active until": "공유 중, 종료",
    "ended": "종료됨",
    "sender": "신고 기관",
    "Share created. Link for the partner:": "공유되었습니다. 기관에 전달할 링크:",
    "Done.": "완료되었습니다.",
    "Failed: {error}": "실패: {error}",
    "Revoke this share now?": "이 영상 공유를 지금 철회하시겠습니까?",
    "viewer networks": "열람 허용 네트워크",
    "IP ranges (CIDR, one per line) the partner's staff open share links from. Empty: any.": "기관 직원이 공유 링크를 여는 IP 대역 (CIDR, 한 줄에 하나). 비우면 제한 없음.",
    "video shares": "영상 공유",
    "follows the subject": "대상 추적",
    "legal basis": "법적 근거",
    "operator's reason": "관제요원 사유",
    "purpose": "목적",
    "starts": "시작",
    "end reason": "종료 사유",
    "expired": "만료됨",
    "incident closed": "사건 종결",
    "webhook message": "웹훅 메시지",
    "webhook messages": "웹훅 메시지",
    "pending": "대기",
    "delivered": "전달됨",
    "gave up": "전달 포기",
    "event": "이벤트",
    "payload": "내용",
    "idempotency key": "멱등성 키",
    "state": "상태",
    "attempts": "시도 횟수",
    "next attempt": "다음 시도",
    "webhook delivery attempt": "웹훅 전달 시도",
    "webhook delivery attempts": "웹훅 전달 시도",
    "attempt": "시도",
    "at": "시각",
    "URL": "URL",
    "HTTP status": "HTTP 상태",
    "duration (ms)": "소요 시간 (ms)",
    "succeeded": "성공",
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
