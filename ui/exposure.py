"""Whether a server is reachable from other machines, and the refusal to expose one unprotected.

The dashboard and the HTTP service bind 127.0.0.1 by default; any other address needs a
credential (a login, an API key), else they refuse to start with one line.
"""

from __future__ import annotations

import ipaddress

from embeddings.errors import ConfigError

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True when ``host`` is only reachable from this machine (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def refuse_exposure(host: str, protected: bool, what: str, remedy: str) -> None:
    """Raise :class:`ConfigError` when ``what`` would serve on a non-loopback ``host`` unprotected."""
    if not is_loopback(host) and not protected:
        raise ConfigError(f"refusing to serve {what} on {host} without {remedy}, or keep the default --host 127.0.0.1")
