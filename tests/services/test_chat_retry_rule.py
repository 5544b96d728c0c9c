"""One retry rule for the chat page (services.chat.RETRYABLE_STATUSES, web.fragments.ending_notice).

Before it, a reply that ended `incomplete` showed a Retry button live (from the run's terminal
event) and lost it after a reload (the page only offered Retry after failed or expired runs).
"""

from __future__ import annotations

import re

import pytest
from django.test import Client

from assistants_app.models import Assistant, Run
from assistants_app.serializers import run_obj
from assistants_app.services import chat
from assistants_app.services.runs import start_run
from assistants_app.web.live import EventRenderer

pytestmark = pytest.mark.django_db
NOTICE = re.compile(r'<div id="run-notice".*?</div>', re.S)

ENDINGS = {
    "failed": {"last_error": {"code": "server_error", "message": "Upstream exploded"}},
    "expired": {},
    "incomplete": {"incomplete_details": {"reason": "max_completion_tokens"}},
    "cancelled": {},
    "completed": {},
}


def _normalized(html: str) -> str:
    block = NOTICE.search(html)
    assert block is not None, html
    return re.sub(r"\s+|hx-swap-oob=\"true\"", "", block.group(0))


@pytest.mark.parametrize("status", list(ENDINGS))
def test_a_finished_reply_says_the_same_live_and_after_a_reload(alice, status) -> None:
    assistant = Assistant.objects.create(name="Helper", model="m", is_default=True)
    thread = chat.live_thread(alice)
    assert thread is not None
    run = start_run(thread, assistant)
    Run.objects.filter(id=run.id).update(status=status, **ENDINGS[status])  # as the engine would end it
    run.refresh_from_db()
    live = "".join(
        op
        for op in EventRenderer("Helper").render(f"thread.run.{status}", run_obj(run))
        if isinstance(op, str)
    )
    client = Client()
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert _normalized(live) == _normalized(page)
    offers_retry = 'hx-post="/chat/retry/"' in _normalized(page)
    assert offers_retry == (status in ("failed", "expired", "incomplete")), status
