"""URLs that may carry credentials: validate them, split the credentials off, redact them for logs.

A URL's user info (`user:password@`) is a secret, and so may be its path and query: chat and
incident webhooks (Slack, Teams, PagerDuty) put their token there. `redact_url` is the one way a
URL reaches a log line, a counter or an error message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import SplitResult, parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import SecretStr

_USERINFO = re.compile(r"(?<=//)[^/?#@]*@")
_SECRET_WORDS = ("password", "passwd", "secret", "token", "key", "sig", "auth", "credential")
# One label of a host name (RFC 1123; `_` is tolerated, as resolvers do).
_LABEL = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")


class UrlError(ValueError):
    """A URL that cannot be used; the message shows it redacted."""

    def __init__(self, what: str, problem: str) -> None:
        super().__init__(f"{what} {problem}")
        self.problem = problem  # without the subject, for messages that name the setting themselves


def is_secret_name(name: str) -> bool:
    """Whether a setting or query parameter named `name` holds a secret (password, token, key ...)."""
    lowered = name.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def valid_host_name(host: str) -> bool:
    """A DNS name or an IPv4 address (IPv6 literals are checked by urlsplit)."""
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    return len(host) <= 253 and all(_LABEL.match(label) for label in labels)


def redact_url(url: str, *, origin_only: bool = False) -> str:
    """`url` safe to log: the password (or a lone user name, often a token) and secret query values
    masked; with `origin_only`, just `scheme://host:port` (for URLs whose path may be a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:  # an unparseable URL (bad IPv6 literal, port out of range): mask by pattern
        return _USERINFO.sub("***@", url.split("?", 1)[0].split("#", 1)[0])
    if parts.scheme == "chdb" or not parts.netloc:
        return url  # chdb://PATH and other URLs without an authority carry no credentials
    if ":" in host:
        host = f"[{host}]"
    userinfo = ""
    if parts.username is not None or parts.password is not None:
        userinfo = f"{parts.username}:***@" if parts.password is not None else "***@"
    netloc = f"{userinfo}{host}{port}"
    if origin_only:
        more = "/…" if parts.path.strip("/") or parts.query else ""
        return f"{parts.scheme}://{netloc}{more}"
    query = urlencode(
        [(k, "***" if is_secret_name(k) else v) for k, v in parse_qsl(parts.query, keep_blank_values=True)]
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


@dataclass(frozen=True)
class HttpTarget:
    """An http(s) URL split for a request: the URL without credentials, and the credentials."""

    url: str = field(repr=False)  # what is requested: no user info (the path may still be a token)
    origin: str  # scheme://host:port, for logs
    username: str | None = field(default=None, repr=False)
    password: SecretStr | None = field(default=None, repr=False)

    def credentials(self) -> tuple[str, ...]:
        """The secret strings of the user info, to scrub from texts that might quote them: the
        password, or a user name that stands alone (often a token)."""
        secret = self.password.get_secret_value() if self.password is not None else self.username or ""
        return (secret,) if len(secret) >= 3 else ()


def parse_http_url(url: str, what: str) -> HttpTarget:
    """Check that `url` is a usable http(s) URL and split its credentials off.

    Raises UrlError naming `what` and the redacted URL: not http/https, no host, a port out of
    range, whitespace or control characters (a header-injection and log-forging risk), or
    characters outside ASCII (percent-encode them, or use the punycode host name).
    """
    shown = redact_url(url, origin_only=True)
    if not url:
        raise UrlError(what, "is empty")
    if any(ord(char) <= 0x20 or ord(char) == 0x7F for char in url):
        raise UrlError(what, f"must not contain whitespace or control characters, got {shown!r}")
    if not url.isascii():
        raise UrlError(what, f"must be ASCII (percent-encode the path, punycode the host), got {shown!r}")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UrlError(what, f"is not a valid URL ({_reason(exc)}), got {shown!r}") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UrlError(what, f"must be an http:// or https:// URL, got {shown!r}")
    host = parts.hostname or ""
    if not host:
        raise UrlError(what, f"has no host, got {shown!r}")
    if ":" not in host and not valid_host_name(host):
        raise UrlError(what, f"has an invalid host name, got {shown!r}")
    if port == 0:
        raise UrlError(what, f"has port 0, got {shown!r}")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    request_url = urlunsplit(SplitResult(parts.scheme.lower(), netloc, parts.path or "/", parts.query, ""))
    username = unquote(parts.username) if parts.username is not None else None
    password = SecretStr(unquote(parts.password)) if parts.password is not None else None
    return HttpTarget(request_url, f"{parts.scheme.lower()}://{netloc}", username, password)


def _reason(exc: ValueError) -> str:
    """urllib's reason without the URL it may quote."""
    text = str(exc)
    return "port out of range" if "port" in text.lower() else "malformed"
