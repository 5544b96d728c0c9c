"""Token usage: what runs used, summed per user, assistant or day for the staff admin, and the
optional daily token budget per user (server-wide, or set for one user by staff) that runs.start
enforces (API and chat alike).

Usage is read from Run.usage (written by the engine, including for runs cut short). A day is a UTC
calendar day: the budget renews at midnight UTC, whatever the server's TIME_ZONE.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db.models import BigIntegerField, Count, F, QuerySet, Sum, Value
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from assistants_app.errors import TokenBudgetExhausted
from assistants_app.models import Assistant, Run, UserLimits

Grouping = Literal["user", "assistant", "day"]


def _tokens(key: str) -> Coalesce:
    # usage is JSON ({"prompt_tokens": …}); KT extracts the key as text on SQLite and PostgreSQL alike.
    return Coalesce(Sum(Cast(KT(f"usage__{key}"), BigIntegerField())), Value(0))


def day_start(now: datetime | None = None) -> datetime:
    now = (now or timezone.now()).astimezone(UTC)
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


def used_today(owner_id: Any, *, now: datetime | None = None) -> int:
    """Tokens the owner's runs created since midnight UTC used so far."""
    rows = Run.objects.filter(thread__owner_id=owner_id, created_at__gte=day_start(now), usage__isnull=False)
    return int(rows.aggregate(n=_tokens("total_tokens"))["n"])


def daily_budget(owner_id: Any = None) -> int:
    """Tokens per UTC day for `owner_id`, 0 for none: what staff set for that user (UserLimits),
    else USER_DAILY_TOKEN_BUDGET. Without an owner, the server-wide budget."""
    if owner_id is not None:
        own = UserLimits.objects.filter(user_id=owner_id).values_list("daily_token_budget", flat=True).first()
        if own is not None:
            return int(own)
    return max(0, int(settings.USER_DAILY_TOKEN_BUDGET))


def check_budget(owner_id: Any, *, now: datetime | None = None) -> None:
    """Refuse a new run once the owner's runs today used their daily budget (daily_budget; 0: no
    budget). Checked when a run starts: runs already under way when it is reached finish."""
    budget = daily_budget(owner_id)
    if not budget:
        return
    used = used_today(owner_id, now=now)
    if used >= budget:
        raise TokenBudgetExhausted(budget, used, day_start(now) + timedelta(days=1))


@dataclass(frozen=True)
class Total:
    key: str  # the username, the assistant's id or the ISO date
    label: str  # what the admin shows: the username, the assistant's name (and id), the date
    runs: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def totals(group: Grouping, *, days: int = 30, now: datetime | None = None) -> list[Total]:
    """Runs and tokens over the last `days` UTC days (today included), per `group`, the largest
    spenders first (per day: newest first)."""
    since = day_start(now) - timedelta(days=max(1, days) - 1)
    rows: QuerySet[Run, Any] = Run.objects.filter(created_at__gte=since)
    if group == "user":
        grouped = rows.values(key=F("thread__owner__username"))
    elif group == "assistant":
        grouped = rows.values(key=F("assistant_ref"))
    else:
        grouped = rows.annotate(day=TruncDate("created_at", tzinfo=UTC)).values(key=F("day"))
    sums = grouped.annotate(
        runs=Count("id"),
        prompt_tokens=_tokens("prompt_tokens"),
        completion_tokens=_tokens("completion_tokens"),
        total_tokens=_tokens("total_tokens"),
    )
    ordered = list(sums.order_by("-key") if group == "day" else sums.order_by("-total_tokens", "key"))
    names = _assistant_names([r["key"] for r in ordered]) if group == "assistant" else {}
    return [
        Total(
            key=str(r["key"] or ""),
            label=_label(group, r["key"], names),
            runs=int(r["runs"]),
            prompt_tokens=int(r["prompt_tokens"]),
            completion_tokens=int(r["completion_tokens"]),
            total_tokens=int(r["total_tokens"]),
        )
        for r in ordered
    ]


def _assistant_names(ids: list[Any]) -> dict[str, str]:
    rows = Assistant.objects.filter(id__in=[i for i in ids if i]).values_list("id", "name")
    return {aid: name or "" for aid, name in rows}


def _label(group: Grouping, key: Any, names: dict[str, str]) -> str:
    if group == "assistant":
        if not key:
            return "(no assistant)"
        if key not in names:
            return f"{key} (deleted)"
        return f"{names[key] or '(unnamed)'} ({key})"
    if group == "day":
        return key.isoformat() if key else ""
    return str(key or "(deleted user)")
