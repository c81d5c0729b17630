"""Fault classification shared by the network providers (IBM, Braket).

Every failure of a vendor call becomes a ``ProviderError`` whose ``kind`` is one of
``FAULT_KINDS``, so the collector-error metrics have a small, fixed label set. The message
is composed here from the operation name and a status code, never from the SDK's own text
(which can echo URLs, request bodies or headers); ``redact`` is a second line of defence
for the few places a vendor string is kept. 429s carry ``retry_after`` (seconds) so the
scheduler can wait at least that long before the next attempt.
"""

from __future__ import annotations

import email.utils
import socket
import time
from collections.abc import Iterable, Iterator

from .base import ProviderError

FAULT_KINDS = ("timeout", "http_5xx", "rate_limited", "auth", "malformed", "unavailable")


def provider_error(kind: str, message: str, retry_after: float | None = None) -> ProviderError:
    return ProviderError(kind, message, retry_after)


def parse_retry_after(value: object, now: float | None = None) -> float | None:
    """RFC 9110 Retry-After: delta-seconds or an HTTP-date. None when absent or unreadable."""
    if value is None:
        return None
    text = str(value).strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """The exception and everything it was raised from or during (cycle-safe)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def classify_status(status: int, operation: str, retry_after: float | None = None) -> ProviderError:
    """Map an HTTP status code to a fault kind."""
    if status == 429:
        wait = "" if retry_after is None else f", retry after {retry_after:g} s"
        return provider_error("rate_limited", f"{operation}: HTTP 429 rate limited{wait}", retry_after)
    if status in (401, 403):
        return provider_error("auth", f"{operation}: HTTP {status}, credentials rejected or expired")
    if 500 <= status <= 599:
        return provider_error("http_5xx", f"{operation}: HTTP {status} from the service")
    if status == 404:
        return provider_error("unavailable", f"{operation}: HTTP 404, not found")
    return provider_error("unavailable", f"{operation}: HTTP {status}")


def _requests_fault(exc: BaseException, operation: str) -> ProviderError | None:
    try:
        import requests
    except ImportError:  # pragma: no cover - requests ships with both SDKs
        return None
    if isinstance(exc, requests.Timeout):
        return provider_error("timeout", f"{operation}: timed out")
    response = getattr(exc, "response", None)
    if isinstance(exc, requests.HTTPError) and response is not None:
        return classify_status(response.status_code, operation, parse_retry_after(response.headers.get("Retry-After")))
    if isinstance(exc, requests.ConnectionError):
        return provider_error("unavailable", f"{operation}: connection failed")
    if isinstance(exc, requests.exceptions.JSONDecodeError):
        return provider_error("malformed", f"{operation}: response is not JSON")
    return None


def _botocore_fault(exc: BaseException, operation: str) -> ProviderError | None:
    try:
        from botocore import exceptions as bx
    except ImportError:  # pragma: no cover - botocore ships with boto3
        return None
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectTimeoutError)):
        return provider_error("timeout", f"{operation}: timed out")
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError, bx.NoAuthTokenError)):
        return provider_error("auth", f"{operation}: no AWS credentials found")
    if isinstance(exc, bx.EndpointConnectionError):
        return provider_error("unavailable", f"{operation}: cannot reach the endpoint")
    if isinstance(exc, bx.ClientError):
        meta = exc.response.get("ResponseMetadata", {}) if isinstance(exc.response, dict) else {}
        status = int(meta.get("HTTPStatusCode") or 0)
        code = str((exc.response.get("Error") or {}).get("Code", "")) if isinstance(exc.response, dict) else ""
        headers = meta.get("HTTPHeaders") or {}
        retry_after = parse_retry_after(headers.get("retry-after") or headers.get("Retry-After"))
        if code in ("ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"):
            return classify_status(429, operation, retry_after)
        if code in ("AccessDeniedException", "UnrecognizedClientException", "InvalidSignatureException",
                    "ExpiredTokenException", "ExpiredToken", "InvalidClientTokenId", "SignatureDoesNotMatch"):
            return provider_error("auth", f"{operation}: {code}")
        if code in ("ValidationException",):
            return provider_error("malformed", f"{operation}: {code}")
        if code in ("ResourceNotFoundException", "DeviceRetiredException", "DeviceOfflineException"):
            return provider_error("unavailable", f"{operation}: {code}")
        if status:
            return classify_status(status, operation, retry_after)
        if code in ("InternalServiceException", "InternalServerException", "ServiceUnavailable"):
            return provider_error("http_5xx", f"{operation}: {code}")
        return provider_error("unavailable", f"{operation}: {code or 'client error'}")
    if isinstance(exc, bx.BotoCoreError):
        return provider_error("unavailable", f"{operation}: {type(exc).__name__}")
    return None


def classify_exception(exc: BaseException, operation: str) -> ProviderError:
    """Turn any exception from a vendor call into a ProviderError with a bounded kind.

    Walks the cause/context chain first for transport facts (a timeout or an HTTP status
    is more specific than the SDK's wrapper around it)."""
    if isinstance(exc, ProviderError):
        return exc
    for link in exception_chain(exc):
        fault = _requests_fault(link, operation) or _botocore_fault(link, operation)
        if fault is not None:
            return fault
        if isinstance(link, (TimeoutError, socket.timeout)):
            return provider_error("timeout", f"{operation}: timed out")
    for link in exception_chain(exc):  # SDK wrappers that kept only a status code
        status = getattr(link, "status_code", None)
        if isinstance(status, int) and status > 0:
            return classify_status(status, operation)
        code = getattr(link, "code", None)  # ibm_cloud_sdk_core.ApiException (IAM, search)
        if type(link).__name__ == "ApiException" and isinstance(code, int) and code > 0:
            if code in (400, 401, 403):
                return provider_error("auth", f"{operation}: IAM rejected the credentials (HTTP {code})")
            return classify_status(code, operation)
    for link in exception_chain(exc):
        if isinstance(link, (ValueError, KeyError, TypeError, AttributeError, IndexError)):
            return provider_error("malformed", f"{operation}: unexpected payload ({type(link).__name__})")
        if isinstance(link, (ConnectionError, OSError)):
            return provider_error("unavailable", f"{operation}: {type(link).__name__}")
    return provider_error("unavailable", f"{operation}: {type(exc).__name__}")
