"""URLs with credentials: checked, split for a request, and redacted for logs."""

from __future__ import annotations

import pytest

from sinks.urls import UrlError, is_secret_name, parse_http_url, redact_url


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://u:s3cret@h:8443", "https://u:***@h:8443"),
        ("https://tok3n@hooks.example/x", "https://***@hooks.example/x"),
        ("http://h:8123/?user=a&password=s3cret", "http://h:8123/?user=a&password=%2A%2A%2A"),
        ("chdb://./var/clickhouse", "chdb://./var/clickhouse"),
        ("http://u:s3cret@h:99999/x", "http://***@h:99999/x"),  # unparseable port: masked by pattern
        ("http://u:s3cret@[::1/x", "http://***@[::1/x"),
    ],
)
def test_redact_url_masks_credentials(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_origin_only_drops_a_path_that_may_be_a_token() -> None:
    assert redact_url("https://u:p4ss@hooks.slack.com/services/T0/B0/XyZ", origin_only=True) == (
        "https://u:***@hooks.slack.com/…"
    )
    assert redact_url("http://127.0.0.1:8080", origin_only=True) == "http://127.0.0.1:8080"


def test_parse_splits_credentials_off_the_request_url() -> None:
    target = parse_http_url("HTTPS://al%40ice:p%3Ass@Hooks.Example:8443/in?x=1#frag", "webhook")
    assert target.url == "https://hooks.example:8443/in?x=1"
    assert target.origin == "https://hooks.example:8443"
    assert (target.username, target.password and target.password.get_secret_value()) == ("al@ice", "p:ss")
    assert target.credentials() == ("p:ss",)
    assert "p:ss" not in repr(target) and "al@ice" not in repr(target)
    assert parse_http_url("http://[::1]:9/", "webhook").url == "http://[::1]:9/"
    assert parse_http_url("http://h", "webhook").url == "http://h/"


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("", "webhook is empty"),
        ("ftp://u:s3cret@h/x", "webhook must be an http:// or https:// URL, got 'ftp://u:***@h/…'"),
        ("http:///path", "webhook has no host"),
        ("http://u:s3cret@h:99999/", "webhook is not a valid URL (port out of range)"),
        ("http://h:0/", "webhook has port 0"),
        ("http://h/a b", "webhook must not contain whitespace or control characters"),
        ("http://h/\r\nX-Injected: 1", "webhook must not contain whitespace or control characters"),
        ("http://hé.example/", "webhook must be ASCII"),
        ("http://bad..host/", "webhook has an invalid host name"),
        ("mailto:someone@example.com", "webhook must be an http:// or https:// URL"),
    ],
)
def test_bad_urls_are_one_line_errors_without_secrets(url: str, problem: str) -> None:
    with pytest.raises(UrlError) as error:
        parse_http_url(url, "webhook")
    assert str(error.value).startswith(problem)
    assert "s3cret" not in str(error.value) and "\n" not in str(error.value)


def test_secret_names() -> None:
    assert all(map(is_secret_name, ["sasl.password", "ssl.key.pem", "sasl.oauthbearer.config", "api_token"]))
    assert not any(map(is_secret_name, ["security.protocol", "sasl.mechanism", "user"]))
