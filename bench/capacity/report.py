"""Markdown tables from a capacity run's phase records."""

from __future__ import annotations

from typing import Any

from .phase import pct


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v * 1000:.1f}"


def _pair(a: float | None, b: float | None) -> str:
    return f"{_ms(a)} / {_ms(b)}"


def _added(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _others(p: dict[str, Any]) -> float:
    """CPU seconds per second used by everything not in the benchmark (other engineers' load)."""
    ours = p["server_cpu_total"] + p["client_cpu"] + p["upstream_cpu"]
    return max(0.0, p["machine_cpu"] - ours) / p["wall"] if p["wall"] else 0.0


def _errors(p: dict[str, Any]) -> str:
    if not p["errors"]:
        return "0"
    dup = f", {p['duplicated_in_failed']} duplicated" if p.get("duplicated_in_failed") else ""
    return f"{p['errors']} ({p.get('missing_in_failed', 0)} tokens not delivered{dup})"


def streaming_table(rows: list[dict[str, Any]], per_run: dict[tuple[str, str], float]) -> list[str]:
    out = [
        "| setup | path | streams | TTFT p50 / p95 (ms) | direct p50 / p95 (ms) | added TTFT p50 / p95 (ms) "
        "| last token p95: via / direct (s) | server CPU per token (µs) | same, net of per-run CPU (µs) "
        "| tokens lost / dup (in streams without error) | failed streams | server CPU (cores) | client CPU (% of a core) | others' CPU (cores) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        v, d = r["via"], r["direct"]
        vp50, vp95 = pct(v["ttft"], 50), pct(v["ttft"], 95)
        dp50, dp95 = pct(d["ttft"], 50), pct(d["ttft"], 95)
        cpt = v["server_cpu_total"] / v["delivered"] * 1e6 if v["delivered"] else None
        run_cpu = per_run.get((r["setup"], r["path"]))
        net = None
        if cpt is not None and run_cpu is not None:
            net = (v["server_cpu_total"] - run_cpu * v["requests"]) / v["delivered"] * 1e6
        last_v, last_d = pct(v["last"], 95), pct(d["last"], 95)
        out.append(
            f"| {r['setup']} | {r['path']} | {v['n']} | {_pair(vp50, vp95)} | {_pair(dp50, dp95)} "
            f"| {_pair(_added(vp50, dp50), _added(vp95, dp95))} "
            f"| {'-' if last_v is None else f'{last_v:.2f}'} / {'-' if last_d is None else f'{last_d:.2f}'} "
            f"| {'-' if cpt is None else f'{cpt:.0f}'} | {'-' if net is None else f'{net:.0f}'} "
            f"| {v['lost']} / {v['duplicated']} | {_errors(v)} | {v['server_cpu_total'] / v['wall']:.2f} "
            f"| {100 * v['client_cpu'] / v['wall']:.0f} | {_others(v):.2f} |"
        )
    return out


def cpu_breakdown(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| setup | path | streams | wall (s) | server CPU by process (s) | per token (µs) |",
        "|---|---|---:|---:|---|---|",
    ]
    for r in rows:
        v = r["via"]
        parts = ", ".join(f"{g} {s:.2f}" for g, s in v["server_cpu"].items())
        per = (
            ", ".join(f"{g} {s / v['delivered'] * 1e6:.0f}" for g, s in v["server_cpu"].items())
            if v["delivered"]
            else "-"
        )
        out.append(f"| {r['setup']} | {r['path']} | {v['n']} | {v['wall']:.1f} | {parts} | {per} |")
    return out


def runs_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| setup | path | runs (parallel) | server CPU per run (ms) | by process (ms per run) | run wall time p50 / p95 (ms) | errors |",
        "|---|---|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        p = r["phase"]
        n = p["requests"] or 1
        parts = ", ".join(f"{g} {s / n * 1000:.1f}" for g, s in p["server_cpu"].items())
        out.append(
            f"| {r['setup']} | {r['path']} | {p['requests']} ({p['n']}) | {p['server_cpu_total'] / n * 1000:.1f} | {parts} "
            f"| {_pair(pct(p['last'], 50), pct(p['last'], 95))} | {p['errors']} |"
        )
    return out


def burst_table(rows: list[dict[str, Any]]) -> list[str]:
    out = [
        "| setup | database | sends at once | errors | send answered p50 / p95 (ms) | runs the burst created, by final status | error samples |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        p = r["phase"]
        runs = ", ".join(f"{k} {v}" for k, v in sorted(r["runs"].items()))
        errs = "; ".join(e[:120] for e in p["error_samples"][:2]) or "-"
        out.append(
            f"| {r['setup']} | {r['database']} | {p['requests']} | {p['errors']} | {_pair(pct(p['ttft'], 50), pct(p['ttft'], 95))} "
            f"| {runs} | {errs} |"
        )
    return out


def profile_tables(prof: dict[str, Any]) -> list[str]:
    out = []
    for label, t in prof.items():
        out.append(
            f"\n{label}: {t['samples']} samples ({t['sampled_s']:.1f} thread-seconds sampled while the process "
            f"used {t['cpu_s']:.1f} CPU seconds); `AsyncStream.__stream__` in {t['stream']:.1f}% of them, "
            f"`construct_type` in {t['construct']:.1f}%, tiktoken in {t['tiktoken']:.1f}%\n"
        )
        out.append("| # | function (file) | self % | total % |")
        out.append("|---:|---|---:|---:|")
        for i, (f, s, tot) in enumerate(t["by_self"], 1):
            out.append(f"| {i} | `{f}` | {s:.1f} | {tot:.1f} |")
        out.append("\n| # | function (file), by total | self % | total % |")
        out.append("|---:|---|---:|---:|")
        for i, (f, s, tot) in enumerate(t["by_total"], 1):
            out.append(f"| {i} | `{f}` | {s:.1f} | {tot:.1f} |")
        out.append("\n| package (leaf frame) | self % |")
        out.append("|---|---:|")
        for p, s in t["packages"]:
            out.append(f"| {p} | {s:.1f} |")
    return out
