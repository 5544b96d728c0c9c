"""The admin's usage report (/admin/usage/): staff see runs and tokens per user, assistant and day."""

from __future__ import annotations

import re

import pytest

from assistants_app.models import Assistant
from tests.services.test_usage import finished_run

pytestmark = pytest.mark.django_db


def _cells(html: str) -> list[list[str]]:
    return [re.findall(r"<td>(.*?)</td>", row) for row in re.findall(r"<tr><td>.*?</tr>", html)]


def test_staff_see_totals_per_user_assistant_and_day(staff_client, alice, bob) -> None:
    helper = Assistant.objects.create(owner=alice, name="Helper", model="m")
    finished_run(alice, helper, 12_345, prompt=345)
    finished_run(bob, helper, 5, prompt=1)
    index = staff_client.get("/admin/")
    assert b'href="/admin/usage/"' in index.content
    response = staff_client.get("/admin/usage/?days=7")
    assert response.status_code == 200
    html = response.content.decode()
    rows = _cells(html)
    assert ["alice", "1", "345", "12,000", "12,345"] in rows
    assert ["bob", "1", "1", "4", "5"] in rows
    assert [f"Helper ({helper.id})", "2", "346", "12,004", "12,350"] in rows
    assert "<strong>7 days</strong>" in html
    assert "No daily token budget is set" in html


def test_the_report_is_staff_only(client, alice) -> None:
    client.force_login(alice)
    response = client.get("/admin/usage/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_an_odd_period_falls_back_to_30_days(staff_client, settings) -> None:
    settings.USER_DAILY_TOKEN_BUDGET = 50_000
    html = staff_client.get("/admin/usage/?days=abc").content.decode()
    assert "<strong>30 days</strong>" in html
    assert "50,000 tokens per UTC day" in html
    assert html.count("No runs in this period.") == 3
