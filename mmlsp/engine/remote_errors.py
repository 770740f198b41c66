"""What a remote backend's failures say: one fixed, readable message per cause and place
(server down, TLS, 401, 404, 501, ...), so the server can show each once; and which
failures are retried (connection-level ones before any response, never HTTP statuses).
"""

from __future__ import annotations

import json
import ssl
from urllib.parse import urlsplit, urlunsplit

import httpx

from mmlsp.engine.base import BackendError


def redact_url(url: str) -> str:
    """``url`` without user:password and query (where people paste tokens)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def server_root(base_url: str) -> str:
    """The server's root URL: ``baseUrl`` with a trailing ``/v1`` (OpenAI style) removed."""
    root = base_url.strip().rstrip("/")
    if root.endswith("/v1"):
        root = root[: -len("/v1")]
    return root


def _server_message(body: bytes) -> str:
    """The human part of an error body (OpenAI, vLLM, llama.cpp and FastAPI shapes)."""
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        text = body.decode("utf-8", "replace").strip()
        return text[:200]
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message") or error.get("msg") or error
        if isinstance(error, list) and error and isinstance(error[0], dict):
            error = error[0].get("msg", error[0])
        if error is not None:
            return str(error)[:200]
    return str(data)[:200]


def http_error(status: int, body: bytes, where: str, model: str, key_env: str) -> BackendError:
    """The message for an HTTP error status from ``where`` (a redacted URL)."""
    detail = _server_message(body)
    if status in (401, 403):
        if key_env:
            hint = f"check the key in the environment variable {key_env}"
        else:
            hint = "set apiKeyEnv to the name of an environment variable that holds the key"
        return BackendError(
            f"the inference server rejected the request to {where} (HTTP {status}, "
            f"unauthorized): {hint}",
            "auth",
        )
    if status == 404:
        if "model" in detail.lower():
            return BackendError(
                f"the inference server at {where} does not serve model {model!r} (HTTP 404); "
                "set the model setting to a name listed by its /v1/models",
                "model",
            )
        return BackendError(
            f"no such endpoint: {where} (HTTP 404); check baseUrl "
            "(the server's address, e.g. http://host:8000 or http://host:8000/v1)",
            "endpoint",
        )
    if status == 501 or status == 405:
        return BackendError(
            f"the inference server does not implement {where} (HTTP {status}); "
            + (
                "set completionEndpoint to 'completions'"
                if where.endswith("/infill")
                else "it needs an OpenAI-compatible completions API"
            ),
            "unsupported",
        )
    if status == 400 and "model" in detail.lower() and "not" in detail.lower():
        return BackendError(
            f"the inference server at {where} rejected model {model!r} (HTTP 400): {detail}",
            "model",
        )
    return BackendError(
        f"the inference server answered HTTP {status} at {where}: {detail}", "server"
    )


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
    return None


def connection_error(exc: httpx.TransportError, where: str) -> BackendError:
    """The message for a transport failure before any response arrived."""
    if (tls := _tls_cause(exc)) is not None or "SSL" in str(exc) or "certificate" in str(exc):
        reason = getattr(tls, "reason", None) or getattr(tls, "verify_message", None) or "handshake"
        return BackendError(
            f"TLS error talking to the inference server at {where} ({reason}); check its "
            "certificate (SSL_CERT_FILE) or use http:// for a server without TLS",
            "tls",
        )
    if isinstance(exc, httpx.TimeoutException):
        return BackendError(
            f"the inference server at {where} did not answer in time (connection timeout)",
            "timeout",
        )
    return BackendError(
        f"cannot reach the inference server at {where} (connection refused or host down); "
        "completions resume when it is up",
        "unreachable",
    )


def should_retry(exc: BaseException, response_started: bool) -> bool:
    """Retry only connection-level failures before any response: never HTTP statuses."""
    if response_started or isinstance(exc, BackendError | httpx.HTTPStatusError):
        return False
    if _tls_cause(exc) is not None:
        return False  # a bad certificate stays bad
    # A stale pooled keep-alive connection fails with a protocol or read error before
    # any byte of the response: safe to send again.
    return isinstance(
        exc,
        httpx.ConnectError | httpx.ConnectTimeout | httpx.RemoteProtocolError | httpx.ReadError,
    )


def backoff_s(attempt: int) -> float:
    """Delay before retry ``attempt`` (0-based): 0.05, 0.2, 0.8 s ... capped at 2 s."""
    return min(2.0, 0.05 * 4**attempt)


def transport_failure(
    exc: httpx.RequestError, started: bool, where: str, timeout_s: float
) -> BackendError:
    """The message for a request that failed for good (retries spent or not allowed)."""
    if isinstance(exc, httpx.ReadTimeout):
        return BackendError(
            f"the inference server at {where} sent nothing for "
            f"{timeout_s:g} s (requestTimeoutMs); it is slow or overloaded",
            "slow",
        )
    if started:
        return BackendError(
            f"the inference server at {where} closed the connection in the middle of a response",
            "dropped",
        )
    if isinstance(exc, httpx.TransportError):
        return connection_error(exc, where)
    return BackendError(
        f"unreadable response from the inference server at {where} ({type(exc).__name__})",
        "protocol",
    )
