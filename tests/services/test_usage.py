"""Token usage (services/usage.py): totals per user, assistant and day for the admin, and the optional
per-user daily token budget, enforced where every run starts (API and chat alike)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from assistants_app.errors import TokenBudgetExhausted
from assistants_app.models import Assistant, Run
from assistants_app.services import chat, keys, usage
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread

pytestmark = pytest.mark.django_db


def finished_run(owner, assistant, tokens: int, *, prompt: int = 0, at: datetime | None = None) -> Run:
    """A run of `owner` that used `tokens` tokens (a stopped one: usage is recorded for those too)."""
    run = start_run(create_thread(owner), assistant)
    fields = {
        "status": "cancelled",
        "usage": {"prompt_tokens": prompt, "completion_tokens": tokens - prompt, "total_tokens": tokens},
    }
    Run.objects.filter(id=run.id).update(**fields)
    if at is not None:
        Run.objects.filter(id=run.id).update(created_at=at)
    return Run.objects.get(id=run.id)


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(owner=alice, name="Helper", model="m")


def test_no_budget_by_default(alice, assistant) -> None:
    finished_run(alice, assistant, 10**9)
    start_run(create_thread(alice), assistant)  # no error


def test_a_user_over_the_budget_cannot_start_a_run_and_others_can(settings, alice, bob, assistant) -> None:
    settings.USER_DAILY_TOKEN_BUDGET = 1000
    finished_run(alice, assistant, 600)
    start_run(create_thread(alice), assistant)  # positive control: 600 < 1000
    finished_run(alice, assistant, 400)
    with pytest.raises(TokenBudgetExhausted) as exc:
        start_run(create_thread(alice), assistant)
    assert (exc.value.budget, exc.value.used) == (1000, 1000)
    assert exc.value.status == 429 and exc.value.code == "insufficient_quota"
    bob_assistant = Assistant.objects.create(owner=bob, model="m")
    start_run(create_thread(bob), bob_assistant)  # another user's budget is their own


def test_staff_set_a_users_own_budget_instead_of_the_servers(settings, alice, bob, assistant) -> None:
    from assistants_app.models import UserLimits

    settings.USER_DAILY_TOKEN_BUDGET = 1000
    finished_run(alice, assistant, 1500)
    with pytest.raises(TokenBudgetExhausted):
        start_run(create_thread(alice), assistant)
    limits = UserLimits.objects.create(user=alice, daily_token_budget=2000)  # more for alice
    start_run(create_thread(alice), assistant)
    finished_run(alice, assistant, 500)
    with pytest.raises(TokenBudgetExhausted) as exc:
        start_run(create_thread(alice), assistant)
    assert (exc.value.budget, exc.value.used) == (2000, 2000)
    limits.daily_token_budget = 0  # none for alice
    limits.save()
    start_run(create_thread(alice), assistant)
    limits.daily_token_budget = None  # back to the server's
    limits.save()
    with pytest.raises(TokenBudgetExhausted):
        start_run(create_thread(alice), assistant)

    # Less for bob than the server's, and with no server budget at all.
    bob_assistant = Assistant.objects.create(owner=bob, model="m")
    settings.USER_DAILY_TOKEN_BUDGET = 0
    UserLimits.objects.create(user=bob, daily_token_budget=100)
    finished_run(bob, bob_assistant, 100)
    with pytest.raises(TokenBudgetExhausted) as exc:
        start_run(create_thread(bob), bob_assistant)
    assert exc.value.budget == 100
    assert usage.daily_budget() == 0 and usage.daily_budget(bob.pk) == 100


def test_staff_set_a_users_budget_on_the_users_admin_page(staff_client, alice, settings) -> None:
    from assistants_app.models import UserLimits

    page = staff_client.get(f"/admin/auth/user/{alice.pk}/change/").content.decode()
    assert 'name="limits-0-daily_token_budget"' in page
    assert "USER_DAILY_TOKEN_BUDGET" in page  # the field's help says what empty means
    form = {
        "username": "alice",
        "email": alice.email,
        "is_active": "on",
        "date_joined_0": "2026-12-01",
        "date_joined_1": "10:00:00",
        "limits-TOTAL_FORMS": "1",
        "limits-INITIAL_FORMS": "0",
        "limits-MIN_NUM_FORMS": "0",
        "limits-MAX_NUM_FORMS": "1",
        "limits-0-daily_token_budget": "5000",
        "limits-0-user": str(alice.pk),
    }
    response = staff_client.post(f"/admin/auth/user/{alice.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    assert UserLimits.objects.get(user=alice).daily_token_budget == 5000
    assert usage.daily_budget(alice.pk) == 5000


def test_the_budget_renews_at_midnight_utc(settings, alice, assistant) -> None:
    settings.USER_DAILY_TOKEN_BUDGET = 1000
    yesterday = usage.day_start() - timedelta(seconds=1)
    finished_run(alice, assistant, 5000, at=yesterday)
    assert usage.used_today(alice.pk) == 0
    start_run(create_thread(alice), assistant)
    now = datetime(2026, 12, 2, 22, 15, tzinfo=UTC)
    assert usage.day_start(now) == datetime(2026, 12, 2, tzinfo=UTC)


def test_the_api_answers_429_insufficient_quota(settings, alice, assistant) -> None:
    settings.USER_DAILY_TOKEN_BUDGET = 50
    finished_run(alice, assistant, 80)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {keys.create_key(alice).raw}")
    thread = api.post("/v1/threads", {}, content_type="application/json").json()
    response = api.post(
        f"/v1/threads/{thread['id']}/runs", {"assistant_id": assistant.id}, content_type="application/json"
    )
    assert response.status_code == 429
    error = response.json()["error"]
    assert error["type"] == error["code"] == "insufficient_quota"
    assert "80 of your 50 tokens" in error["message"]
    assert response["x-should-retry"] == "false"
    assert not Run.objects.filter(thread_id=thread["id"]).exists()


def test_the_chat_says_it_in_plain_words_and_stores_nothing(settings, alice) -> None:
    settings.USER_DAILY_TOKEN_BUDGET = 2000
    default = Assistant.objects.create(name="Assistant", model="m", is_default=True)
    finished_run(alice, default, 2500)
    thread = chat.conversation(alice)
    with pytest.raises(chat.ChatError) as exc:
        chat.send(alice, "hello?", thread=thread)
    assert exc.value.status == 429
    assert "today's limit of 2,000 tokens" in exc.value.message
    assert "UTC" in exc.value.message
    assert not thread.messages.exists()


def test_totals_per_user_assistant_and_day(alice, bob, assistant) -> None:
    other = Assistant.objects.create(owner=bob, name="Other", model="m")
    finished_run(alice, assistant, 100, prompt=40)
    finished_run(alice, assistant, 50, prompt=10)
    finished_run(bob, other, 30, prompt=5)
    finished_run(bob, other, 7, at=usage.day_start() - timedelta(days=3))
    finished_run(bob, other, 1000, at=usage.day_start() - timedelta(days=40))  # outside 30 days
    start_run(create_thread(bob), other)  # queued: no usage yet, counted as a run

    per_user = {
        t.label: (t.runs, t.prompt_tokens, t.completion_tokens, t.total_tokens) for t in usage.totals("user")
    }
    assert per_user == {"alice": (2, 50, 100, 150), "bob": (3, 5, 32, 37)}
    per_assistant = {t.key: (t.label, t.total_tokens) for t in usage.totals("assistant")}
    assert per_assistant == {
        assistant.id: (f"Helper ({assistant.id})", 150),
        other.id: (f"Other ({other.id})", 37),
    }
    per_day = [(t.label, t.total_tokens) for t in usage.totals("day")]
    today = usage.day_start().date()
    assert per_day == [(today.isoformat(), 180), ((today - timedelta(days=3)).isoformat(), 7)]
    assert [t.total_tokens for t in usage.totals("user", days=1)] == [150, 30]
    assert sum(t.total_tokens for t in usage.totals("user", days=90)) == 1187


def test_a_deleted_assistant_keeps_its_usage(alice, assistant) -> None:
    finished_run(alice, assistant, 12)
    aid = assistant.id
    assistant.delete()
    assert [(t.label, t.total_tokens) for t in usage.totals("assistant")] == [(f"{aid} (deleted)", 12)]
