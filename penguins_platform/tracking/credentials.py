"""Credentials in a tracking URI (`http://user:password@host:5000`): used, never shown.

A URI with credentials is easy to paste and easy to leak: into an error message, Dagster's
event log, a sensor's skip reason or a metadata link. Everything the platform shows goes
through `mask`, and what it sends goes without the credentials in the URI (an HTTP client
such as urllib takes `user:password@127.0.0.1` for a host name).
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"


@dataclass(frozen=True)
class SplitUri:
    """A URI without its user part, and the user part's username and password."""

    uri: str
    username: str | None = None
    password: str | None = None

    @property
    def basic_auth_header(self) -> str | None:
        """The `Authorization` value for these credentials, or None without any."""
        if self.username is None and self.password is None:
            return None
        pair = f"{self.username or ''}:{self.password or ''}".encode()
        return f"Basic {base64.b64encode(pair).decode('ascii')}"


def split(uri: str) -> SplitUri:
    """`http://user:pw@host/x` → (`http://host/x`, user, pw). URIs without a user part pass."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return SplitUri(uri)
    userinfo, _, host = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    return SplitUri(
        urlunsplit(parts._replace(netloc=host)),
        unquote(username) or None,
        unquote(password) if ":" in userinfo else None,
    )


def mask(uri: str) -> str:
    """The URI with its user part replaced by `***`, fit for messages, metadata and links."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{MASK}@{host}"))


def scrub(text: str, uri: str) -> str:
    """`text` with every form of `uri`'s credentials masked: for messages of other libraries,
    which may quote the URI, or the password alone, as they received it."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return text
    userinfo = parts.netloc.rpartition("@")[0]
    found = split(uri)
    for secret in sorted({userinfo, unquote(userinfo), found.password or ""}, key=len)[::-1]:
        if secret:
            text = text.replace(secret, MASK)
    return text
