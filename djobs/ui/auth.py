"""Who may use the dashboard, and from which page: checked before any route runs, failing closed.

The dashboard can cancel and enqueue jobs, so every request must prove it may (a token, or the embedding
application's `authorizer`), and a browser must not be turned against it:

- **Host allow-list.** A DNS-rebinding page (`evil.example` re-pointed at 127.0.0.1) reaches the port with
  its own name in `Host`, and the browser treats it as same-origin with the attacker. Only loopback names,
  the bound address and names configured on purpose are served. `X-Forwarded-Host` is never read here: a
  server that trusts its proxy (waitress's `trusted_proxy`) rewrites `Host` before the app sees it.
- **Writes come from our own page.** A POST with an `Origin` must name this scheme, host and port
  (`Origin: null`, sent by sandboxed frames and some redirects, is refused); without `Origin`, a
  `Sec-Fetch-Site` other than same-origin is refused. Any cross-site request other than a top-level page
  load is refused (fetch-metadata resource isolation).
- **Credentials.** `token`: `Authorization: Bearer <token>` for scripts, or a cookie the first page load
  sets from `?token=` (HttpOnly, so page scripts never see it; SameSite=Strict, so no other site's page
  can send it). Compared in constant time. `authorizer(environ) -> bool` is asked for every request that
  the token did not admit. With neither, nobody is served.

Liveness and readiness (`healthz`, `readyz`) answer without credentials and whatever the Host: probes come
from load balancers and kubelets that hold no token and use the pod's address, and the answers say only
whether the process and its database are up. `metrics` is scraped by the pod's address too, so it skips the
Host check but still needs the token (a rebinding page has none, and the browser's cookie belongs to
another name).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote, urlsplit

from djobs.ui.http import SECURITY_HEADERS, Headers, Request, Response, error_response

log = logging.getLogger("djobs.ui")

Authorizer = Callable[[dict[str, Any]], bool]

#: Paths answered to anyone, and paths answered whatever the Host (see the module docstring).
OPEN_PATHS = frozenset({"healthz", "readyz"})
ANY_HOST_PATHS = OPEN_PATHS | {"metrics"}
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
MIN_TOKEN = 16
_SAFE_METHODS = frozenset({"GET", "HEAD"})
_DEFAULT_PORTS = {"http": "80", "https": "443"}


def allow_all(environ: dict[str, Any]) -> bool:
    """An authorizer that admits everyone: for an app mounted behind authentication of your own (a login
    middleware, a proxy that authenticates), said explicitly so that forgetting one never exposes it."""
    return True


def token_problem(token: str) -> str | None:
    """Why `token` is too weak or unusable in a header and a cookie, or None."""
    if len(token) < MIN_TOKEN:
        return f"must be at least {MIN_TOKEN} characters"
    if not all(33 <= ord(c) <= 126 for c in token) or any(c in token for c in ';,"\\'):
        return "must be printable ASCII without spaces, quotes, commas, semicolons or backslashes"
    return None


def split_host(value: str) -> tuple[str, str] | None:
    """("host", "port") from a Host header value, lower-cased, IPv6 without brackets; None if malformed."""
    value = value.strip().lower()
    if not value or any(c in value for c in " /\\@?#\t"):
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        host, rest = value[1:end], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port = rest[1:]
    else:
        host, _, port = value.partition(":")
    if port and not port.isdigit():
        return None
    return host.rstrip("."), port


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HostList:
    """Host names served: loopback names always, exact names, `.example.com` for a domain and its
    subdomains, `*` for any."""

    def __init__(self, names: Iterable[str] | None) -> None:
        self.any = False
        self.exact: set[str] = set()
        self.suffixes: list[str] = []
        for name in names or ():
            name = name.strip().lower().rstrip(".")
            if name == "*":
                self.any = True
            elif name.startswith("."):
                self.suffixes.append(name)
            elif name:
                parsed = split_host(name) if not name.count(":") > 1 else (name, "")
                self.exact.add(parsed[0] if parsed else name)

    def allows(self, host: str) -> bool:
        # Loopback names are always served: no page elsewhere can rebind them.
        if self.any or host in self.exact or _is_loopback(host):
            return True
        return any(host.endswith(s) or host == s[1:] for s in self.suffixes)

    def describe(self) -> str:
        if self.any:
            return "any host"
        shown = sorted(self.exact - set(LOOPBACK_NAMES)) + [f"*{s}" for s in self.suffixes]
        return ", ".join(["loopback names", *shown])


def default_hosts(bound: str | None, extra: Iterable[str] = ()) -> list[str]:
    """What `djobs ui` serves by default: loopback names, the address it is bound to, `--allow-host`s."""
    names = list(LOOPBACK_NAMES)
    if bound and bound not in ("0.0.0.0", "::", ""):
        names.append(bound)
    names.extend(extra)
    return names


class Guard:
    """The checks of the module docstring, in order: Host, fetch metadata, Origin on writes, credentials."""

    def __init__(
        self,
        token: str | None = None,
        authorizer: Authorizer | None = None,
        allowed_hosts: Iterable[str] | None = None,
    ) -> None:
        if token is not None:
            problem = token_problem(token)
            if problem:
                raise ValueError(f"token {problem}")
        self._token = token.encode("ascii") if token is not None else None
        self.authorizer = authorizer
        self.hosts = HostList(allowed_hosts)
        digest = hashlib.sha256(self._token or b"").hexdigest()[:12]
        # Per token: two dashboards on one host (cookies ignore the port) do not overwrite each other's.
        self.cookie_name = f"djobs_ui_{digest}"

    # -- the checks ----------------------------------------------------------------------------------------
    def check(self, req: Request, rel: str) -> Response | None:
        """None to serve the request, else the response refusing it (or the page load that sets the cookie)."""
        if rel in OPEN_PATHS and req.method in _SAFE_METHODS:
            return None
        refused = None if rel in ANY_HOST_PATHS else self._check_host(req)
        refused = refused or self._check_site(req, rel)
        if refused is None and req.method not in _SAFE_METHODS:
            refused = self._check_origin(req)
        if refused is not None:
            return refused
        return self._check_credentials(req, rel)

    def _check_host(self, req: Request) -> Response | None:
        raw = req.header("Host")
        if raw is None:  # HTTP/1.0 without Host: not a browser, so not a rebinding page
            return None
        parsed = split_host(raw)
        if parsed is None or not self.hosts.allows(parsed[0]):
            return error_response(
                403,
                f"host {raw[:100]!r} is not served here (allowed: {self.hosts.describe()}); "
                "add it with `djobs ui --allow-host NAME` or djobs.ui.app(..., allowed_hosts=[...])",
            )
        return None

    def _check_site(self, req: Request, rel: str) -> Response | None:
        site = (req.header("Sec-Fetch-Site") or "").lower()
        if site != "cross-site":
            return None
        navigating = req.method == "GET" and (req.header("Sec-Fetch-Mode") or "").lower() == "navigate"
        if navigating and rel in ("", "index.html"):
            return None  # a link to the dashboard from elsewhere: the page itself, never the API
        return error_response(403, "cross-site request refused")

    def _check_origin(self, req: Request) -> Response | None:
        origin = req.header("Origin")
        if origin is None:
            site = (req.header("Sec-Fetch-Site") or "").lower()
            if site and site not in ("same-origin", "none"):
                return error_response(403, f"{req.method} from a {site} page refused")
            return None  # not a browser (curl, a script): its credentials still have to pass
        parts = urlsplit(origin.strip()) if origin.strip().lower() != "null" else None
        scheme = str(req.environ.get("wsgi.url_scheme", "http")).lower()
        host = split_host(req.header("Host") or "")
        if parts is None or host is None or not parts.hostname:
            return error_response(403, f"{req.method} from origin {origin[:100]!r} refused")
        oport = str(parts.port) if parts.port is not None else _DEFAULT_PORTS.get(parts.scheme.lower(), "")
        hport = host[1] or _DEFAULT_PORTS.get(scheme, "")
        if parts.scheme.lower() != scheme or parts.hostname.lower().rstrip(".") != host[0] or oport != hport:
            return error_response(403, f"cross-origin {req.method} from {origin[:100]!r} refused")
        return None

    def _check_credentials(self, req: Request, rel: str) -> Response | None:
        if self._token is not None:
            if self._token_matches(self._bearer(req)) or self._token_matches(self._cookie(req)):
                return None
            given = req.arg("token")
            if given is not None and rel in ("", "index.html") and req.method in _SAFE_METHODS:
                if self._token_matches(given):
                    return self._login(req)
                return self._unauthorized(req, rel, "the token in the address is wrong")
        if self.authorizer is not None:
            try:
                if self.authorizer(req.environ):
                    return None
            except Exception:
                log.exception("djobs.ui: the authorizer raised; refusing the request")
                return error_response(500, "the dashboard's authorizer failed; see the server log")
            if self._token is None:
                return error_response(403, "not authorized (the application's authorizer refused this request)")
        if self._token is None and self.authorizer is None:
            return error_response(
                403,
                "this dashboard has no authentication configured, so it serves nobody: pass "
                "authorizer=fn (fn(environ) -> bool, e.g. checking your session; djobs.ui.allow_all when a "
                "login in front already did) or token=... to djobs.ui.app, or use `djobs ui`, which makes a token",
            )
        return self._unauthorized(req, rel, "a token is required")

    # -- helpers -------------------------------------------------------------------------------------------
    def _token_matches(self, given: str | None) -> bool:
        if given is None or self._token is None:
            return False
        try:
            raw = given.encode("ascii")
        except UnicodeEncodeError:
            return False
        return hmac.compare_digest(raw, self._token)

    @staticmethod
    def _bearer(req: Request) -> str | None:
        value = req.header("Authorization") or ""
        scheme, _, credential = value.strip().partition(" ")
        return credential.strip() if scheme.lower() == "bearer" and credential.strip() else None

    def _cookie(self, req: Request) -> str | None:
        for part in (req.header("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == self.cookie_name:
                return value.strip()
        return None

    def _login(self, req: Request) -> Response:
        """The token came in the address: keep it in a cookie and send the browser to the same page without
        it, so it stays out of the address bar, history and any copied link."""
        base = req.script_name.rstrip("/") + "/"
        secure = "; Secure" if str(req.environ.get("wsgi.url_scheme")) == "https" else ""
        assert self._token is not None
        cookie = f"{self.cookie_name}={self._token.decode()}; Path={quote(base)}; HttpOnly; SameSite=Strict{secure}"
        headers: Headers = [
            ("Location", quote(base)),
            ("Set-Cookie", cookie),
            ("Cache-Control", "no-store"),
            ("Content-Length", "0"),
            *SECURITY_HEADERS,
        ]
        return 303, headers, b""

    def _unauthorized(self, req: Request, rel: str, why: str) -> Response:
        challenge = [("WWW-Authenticate", 'Bearer realm="djobs"')]
        accept = req.header("Accept") or ""
        if rel in ("", "index.html") and "text/html" in accept:
            body = (
                "<!doctype html><meta charset=utf-8><title>djobs: sign in</title>"
                "<h1>djobs dashboard</h1><p>" + why.replace("<", "&lt;") + ". Open the address that "
                "<code>djobs ui</code> printed when it started (it carries <code>?token=…</code>), or restart "
                "it with <code>--token</code>.</p>"
            ).encode()
            return 401, [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Content-Length", str(len(body))),
                ("Cache-Control", "no-store"),
                ("Content-Security-Policy", "default-src 'none'"),
                *SECURITY_HEADERS,
                *challenge,
            ], body
        return error_response(401, f"{why}: send Authorization: Bearer <token>", challenge)
