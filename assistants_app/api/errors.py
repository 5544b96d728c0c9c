"""OpenAI-shaped error responses: `{"error": {"message", "type", "param", "code"}}`, never HTML."""

from __future__ import annotations

from django.http import JsonResponse

from assistants_app.errors import ServiceError


class Unauthorized(ServiceError):
    status = 401

    def __init__(self, message: str) -> None:
        super().__init__(message, code="invalid_api_key")


class MethodNotAllowed(ServiceError):
    status = 405

    def __init__(self, method: str, path: str, allowed: list[str]) -> None:
        super().__init__(
            f"Invalid method for URL ({method} {path}): allowed methods are {', '.join(allowed)}.",
            code="method_not_allowed",
        )
        self.allowed = allowed


class PayloadTooLarge(ServiceError):
    status = 413

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message, param=param, code="payload_too_large")


class RateLimited(ServiceError):
    status = 429
    type = "requests"

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            "Rate limit reached for this API key. Please try again later.", code="rate_limit_exceeded"
        )
        self.retry_after = retry_after


class TooManyBadKeys(RateLimited):
    """Too many bad API keys from one address lately: its bad keys get this instead of a 401 until the
    window ends. A bad key does not get better by itself, so the SDK is told not to retry."""

    retryable = False

    def __init__(self, retry_after: float) -> None:
        super().__init__(retry_after)
        self.message = (
            "Too many requests with an incorrect API key from your address. "
            f"Check the key, and try again in {max(1, int(retry_after + 0.999))} seconds."
        )
        self.code = "too_many_invalid_api_keys"


class ServerError(ServiceError):
    status = 500
    type = "server_error"

    def __init__(self) -> None:
        super().__init__("The server had an error while processing your request. Sorry about that!")


class UnknownUrl(ServiceError):
    status = 404

    def __init__(self, method: str, path: str) -> None:
        super().__init__(f"Invalid URL ({method} {path})", code="unknown_url")


def error_response(err: ServiceError) -> JsonResponse:
    response = JsonResponse({"error": err.as_dict()}, status=err.status)
    if isinstance(err, RateLimited):
        response["retry-after"] = str(max(1, int(err.retry_after + 0.999)))
        response["retry-after-ms"] = str(int(err.retry_after * 1000))
        if not getattr(err, "retryable", True):
            response["x-should-retry"] = "false"
        return response
    # The SDK retries 408/409/429/5xx unless told not to. None of our errors gets better by sending the
    # same request again at once (a busy thread stays busy until its run ends), and a retried POST
    # that did half its work would do it twice.
    response["x-should-retry"] = "false"
    if isinstance(err, MethodNotAllowed):
        response["Allow"] = ", ".join(err.allowed)
    if isinstance(err, Unauthorized):
        response["WWW-Authenticate"] = 'Bearer realm="v1"'
    return response
