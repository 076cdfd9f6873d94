"""Background jobs of sharing: ending expired shares, delivering webhooks. Ids in, re-fetch, idempotent."""

from __future__ import annotations

from celery import shared_task

from partners import webhooks
from partners.sharing import shares_expire as shares_expire_now


@shared_task(name="partners.tasks.shares_expire", ignore_result=True)
def shares_expire() -> int:
    """Beat runs this every SHARE_EXPIRY_CHECK_EVERY_S; each share is ended exactly once."""
    return len(shares_expire_now())


@shared_task(name="partners.tasks.webhook_deliver", ignore_result=True)
def webhook_deliver(message_id: int) -> str:
    return webhooks.webhook_deliver(message_id=message_id)


@shared_task(name="partners.tasks.webhooks_sweep", ignore_result=True)
def webhooks_sweep() -> int:
    return len(webhooks.webhooks_sweep())
