"""Network reads with timeouts and retries: the one home of the retry rule.

A fetch that fails with a *transient* error (a timeout, a refused, reset or
dropped connection, HTTP 408, 429 or 5xx) is tried again after
``RETRY_BACKOFF`` seconds, then twice that, and so on, ``FETCH_RETRIES`` times;
then the last error stands. Other errors (HTTP 404, 403, a bad URL) are not
retried::

    data = with_retries(lambda: http_get_bytes(url, timeout=30.0), what=url)

``timeout`` bounds the wait to connect and the wait for each next piece of
data, so a server that accepts and never answers costs ``timeout`` seconds per
try, not forever.
"""

from __future__ import annotations

import http.client
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import TypeVar

from megaclassifier.constants import DEFAULT_TIMEOUT, FETCH_RETRIES, RETRY_BACKOFF

logger = logging.getLogger(__name__)

T = TypeVar("T")

_CHUNK = 1 << 20
_TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}


def is_transient(error: BaseException) -> bool:
    """Whether trying again later may succeed."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code in _TRANSIENT_HTTP
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        return isinstance(reason, BaseException) and is_transient(reason)
    return isinstance(error, (TimeoutError, socket.timeout, ConnectionError, http.client.HTTPException))


def with_retries(
    attempt: Callable[[], T],
    *,
    what: str,
    retries: int = FETCH_RETRIES,
    backoff: float | None = None,
    transient: Callable[[BaseException], bool] = is_transient,
) -> T:
    """Call ``attempt`` until it succeeds, retrying transient errors with exponential backoff.

    Args:
        attempt: the fetch; it raises on failure.
        what: named in the log line of each retry.
        retries: how many times to try again after the first failure.
        backoff: seconds before the first retry (default ``RETRY_BACKOFF``); doubled each time.
        transient: which errors are worth another try.

    Raises:
        The last error, when it is not transient or the retries are used up.
    """
    backoff = RETRY_BACKOFF if backoff is None else backoff
    for n in range(retries + 1):
        try:
            return attempt()
        except Exception as e:
            if n == retries or not transient(e):
                raise
            delay = backoff * 2**n
            logger.info("%s: %s; trying again in %.1f s", what, describe_error(e), delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def describe_error(error: BaseException) -> str:
    """A network error in a few words: ``HTTP 503 Service Unavailable``, ``timed out after ...``."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError) and isinstance(error.reason, BaseException):
        return describe_error(error.reason)
    if isinstance(error, (TimeoutError, socket.timeout)):
        return "timed out (no answer within --timeout)"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def http_get_bytes(url: str, *, timeout: float = DEFAULT_TIMEOUT, headers: dict[str, str] | None = None) -> bytes:
    """GET a whole http(s) URL, waiting at most ``timeout`` seconds to connect and for each piece of data.

    Raises:
        urllib.error.HTTPError, urllib.error.URLError, OSError, http.client.HTTPException: as urllib raises them.
    """
    request = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        chunks = []
        while chunk := response.read(_CHUNK):
            chunks.append(chunk)
    return b"".join(chunks)
