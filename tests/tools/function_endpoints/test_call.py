"""Calling a function endpoint for real, against a local HTTP server: what is sent, what the model
reads back, and the guards (addresses, pinning, redirects, timeouts, size caps)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from assistants_app.tools.function_endpoints import guard
from assistants_app.tools.function_endpoints.call import Endpoint, call
from tests.fakes.endpoint import FakeEndpoint
from tests.support.tls import tls_contexts


@pytest.fixture
def ep() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as server:
        yield server


@pytest.fixture
def allow_loopback(settings):
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "127.0.0.1"


def endpoint(url: str, **kw) -> Endpoint:
    return Endpoint(function="fn", url=url, method=kw.pop("method", "POST"), **kw)


WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


# --- what goes out, what comes back ---------------------------------------------------------------
async def test_post_sends_the_arguments_and_the_configured_header(ep, allow_loopback, monkeypatch) -> None:
    monkeypatch.setenv("WEATHER_TOKEN", "Bearer s3cret")
    e = endpoint(ep.url("/echo"), header_env={"Authorization": "WEATHER_TOKEN"})
    output = await call(e, '{"city": "Paris"}', WEATHER)
    assert json.loads(output) == {"method": "POST", "path": "/echo", "query": {}, "json": {"city": "Paris"}}
    (req,) = ep.requests
    assert req.headers["authorization"] == "Bearer s3cret"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"].startswith("assistants-platform")


async def test_get_sends_the_arguments_as_query_parameters(ep, allow_loopback) -> None:
    e = endpoint(ep.url("/echo?units=metric"), method="GET")
    output = await call(e, '{"city": "São Paulo", "days": 3, "hourly": true}')
    assert json.loads(output)["query"] == {
        "units": ["metric"],
        "city": ["São Paulo"],
        "days": ["3"],
        "hourly": ["true"],
    }
    assert ep.requests[0].body == b""


async def test_http_errors_are_outputs_the_model_can_read(ep, allow_loopback) -> None:
    output = await call(endpoint(ep.url("/status/503")), "{}")
    assert output == 'Error: the endpoint answered HTTP 503 Service Unavailable.\n{"error": "nope"}'


async def test_arguments_that_do_not_match_the_parameters_are_not_sent(ep, allow_loopback) -> None:
    e = endpoint(ep.url("/echo"))
    assert "do not match the function's parameters" in await call(e, '{"town": "Paris"}', WEATHER)
    assert "'city' is a required property" in await call(e, '{"town": "Paris"}', WEATHER)
    assert "not valid JSON" in await call(e, '{"city": ', WEATHER)
    assert "must be a JSON object" in await call(e, '["Paris"]', WEATHER)
    assert ep.requests == []
    assert json.loads(await call(e, '{"city": "Paris"}', WEATHER))["json"] == {"city": "Paris"}  # control


async def test_a_missing_header_variable_means_no_call(ep, allow_loopback, monkeypatch) -> None:
    monkeypatch.delenv("NO_SUCH_TOKEN", raising=False)
    output = await call(endpoint(ep.url("/echo"), header_env={"X-Key": "NO_SUCH_TOKEN"}), "{}")
    assert "not configured on this server" in output and "NO_SUCH_TOKEN" not in output
    assert ep.requests == []


# --- limits ---------------------------------------------------------------------------------------
async def test_the_answer_is_cut_at_the_size_cap_with_a_marker(ep, allow_loopback) -> None:
    output = await call(endpoint(ep.url("/text?bytes=5000"), max_bytes=1000), "{}")
    assert output == "x" * 1000 + "\n[response truncated: it is longer than 1000 bytes]"
    assert await call(endpoint(ep.url("/text?bytes=1000"), max_bytes=1000), "{}") == "x" * 1000


async def test_a_compressed_answer_is_capped_after_inflating(ep, allow_loopback) -> None:
    # 50 MB of zeros is ~50 KB gzipped: the cap applies to what it inflates to, while inflating.
    output = await call(endpoint(ep.url("/gzip?bytes=50000000"), max_bytes=2000), "{}")
    assert output == "\0" * 2000 + "\n[response truncated: it is longer than 2000 bytes]"
    assert await call(endpoint(ep.url("/gzip?bytes=10"), max_bytes=2000), "{}") == "\0" * 10


async def test_a_slow_endpoint_times_out_into_an_output(ep, allow_loopback) -> None:
    output = await call(endpoint(ep.url("/slow"), timeout=0.3), "{}")
    assert output == "Error: the endpoint did not answer within 0.3 seconds."


# --- redirects --------------------------------------------------------------------------------------
async def test_same_host_redirects_are_followed(ep, allow_loopback) -> None:
    output = await call(endpoint(ep.url("/redirect?to=/echo&code=307")), '{"a": 1}')
    assert json.loads(output)["json"] == {"a": 1}  # 307 keeps the method and the body
    assert [r.path for r in ep.requests] == ["/redirect", "/echo"]


async def test_redirects_to_another_host_are_not_followed(ep, settings, monkeypatch) -> None:
    # Both names are allowed and reach this server: only the change of host stops the redirect.
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "127.0.0.1,localhost"
    monkeypatch.setenv("SECRET_HEADER", "do-not-leak")
    target = ep.url("/echo", host="localhost")
    e = endpoint(ep.url(f"/redirect?to={target}"), header_env={"X-Secret": "SECRET_HEADER"})
    output = await call(e, "{}")
    assert output.startswith("Error: the endpoint redirected to another host (HTTP 302)")
    assert [r.path for r in ep.requests] == ["/redirect"]
    assert json.loads(await call(endpoint(target), "{}"))["path"] == "/echo"  # control: reachable


async def test_redirect_loops_end(ep, allow_loopback) -> None:
    output = await call(endpoint(ep.url("/loop")), "{}")
    assert output == "Error: the endpoint redirected more than 3 times."
    assert [r.path for r in ep.requests] == ["/loop"] * 4


# --- addresses (SSRF) ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/echo",
        "http://localhost:{port}/echo",
        "http://[::1]:{port}/echo",
        "http://10.0.0.1/",
        "http://192.168.1.1/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://0.0.0.0:{port}/echo",
        "http://[::ffff:127.0.0.1]:{port}/echo",
    ],
)
async def test_private_addresses_are_refused_without_the_allow_list(ep, settings, url) -> None:
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = ""
    output = await call(endpoint(url.format(port=ep.port)), "{}")
    assert output == (
        "Error: the endpoint's address is not public and not allowed on this server; "
        "the endpoint was not called."
    )
    assert ep.requests == []


async def test_the_allow_list_takes_networks_and_host_names(ep, settings) -> None:
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "10.0.0.0/8, 127.0.0.0/8"
    assert json.loads(await call(endpoint(ep.url("/echo")), "{}"))["path"] == "/echo"
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "localhost"
    assert json.loads(await call(endpoint(ep.url("/echo", host="localhost")), "{}"))["path"] == "/echo"
    # A host name in the list allows that name only, not the address it resolves to.
    assert "not public" in await call(endpoint(ep.url("/echo")), "{}")


async def test_a_name_that_resolves_privately_is_refused(ep, settings, monkeypatch) -> None:
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = ""
    answers = {"internal.example.test": ["10.1.2.3"], "mixed.example.test": ["93.184.216.34", "127.0.0.1"]}

    async def resolve(host: str, port: int) -> list[str]:
        return answers[host]

    monkeypatch.setattr(guard, "resolve", resolve)
    for host in answers:
        assert "not public" in await call(endpoint(f"http://{host}:{ep.port}/echo"), "{}")
    assert ep.requests == []


async def test_the_connection_goes_to_the_checked_address_under_the_urls_name(
    ep, settings, monkeypatch
) -> None:
    """Pinning: one resolution, checked, then connected to; the request still names the URL's host
    (Host header; SNI for https). A name that real DNS does not know proves no second lookup."""
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "127.0.0.1"
    lookups: list[str] = []

    async def resolve(host: str, port: int) -> list[str]:
        lookups.append(host)
        return ["127.0.0.1"]

    monkeypatch.setattr(guard, "resolve", resolve)
    output = await call(endpoint(f"http://weather.example.test:{ep.port}/echo"), '{"city": "Oslo"}')
    assert json.loads(output)["json"] == {"city": "Oslo"}
    assert lookups == ["weather.example.test"]
    assert ep.requests[0].headers["host"] == f"weather.example.test:{ep.port}"


def test_the_allow_list_setting_is_parsed_strictly() -> None:
    policy = guard.parse_allow_list(" api.internal , 10.0.0.0/8,[fd00::1], 192.168.1.7 ")
    assert policy.hosts == {"api.internal"}
    assert [str(n) for n in policy.networks] == ["10.0.0.0/8", "fd00::1/128", "192.168.1.7/32"]
    for bad in ("10.0.0.0/33", "http://x", "a b", "x:80"):
        with pytest.raises(ValueError, match="neither a host name"):
            guard.parse_allow_list(bad)
    assert guard.parse_allow_list("") == guard.Policy()


# --- https ----------------------------------------------------------------------------------------------
@pytest.fixture
def tls_ep(settings, monkeypatch) -> Iterator[FakeEndpoint]:
    """An https endpoint for weather.example.test (resolved, by the guard, to 127.0.0.1)."""
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "127.0.0.1"
    server_ctx, client_ctx, _ = tls_contexts("weather.example.test")

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    monkeypatch.setattr(guard, "resolve", resolve)
    monkeypatch.setattr(guard, "_ssl_context", lambda: client_ctx)
    with FakeEndpoint(tls=server_ctx) as server:
        yield server


async def test_https_to_a_pinned_address_still_verifies_the_names_certificate(tls_ep) -> None:
    output = await call(endpoint(tls_ep.url("/echo", host="weather.example.test")), '{"city": "Oslo"}')
    assert json.loads(output)["json"] == {"city": "Oslo"}
    # Control: the same server under another name fails verification (the name is what is checked).
    output = await call(endpoint(tls_ep.url("/echo")), "{}")
    assert output.startswith("Error: the endpoint could not be reached") and "CERTIFICATE" in output.upper()


async def test_a_redirect_from_https_to_http_is_not_followed(tls_ep, ep) -> None:
    target = ep.url("/echo", host="weather.example.test")
    output = await call(endpoint(tls_ep.url(f"/redirect?to={target}", host="weather.example.test")), "{}")
    assert output == "Error: the endpoint redirected from https to http; not followed."
    assert ep.requests == []
