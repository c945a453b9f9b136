"""HTTP plumbing of the dashboard: the request wrapper, errors answered as JSON, strict JSON parsing.

Bodies are parsed strictly because whatever the API accepts may be written to the database: NaN,
Infinity and numbers that overflow a float (`1e400`) are refused, nesting deeper than the library allows
is refused before Python's parser would recurse into it, and strings that cannot be encoded as UTF-8
(lone surrogates) are refused. A malformed body is a 400, never a 500.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

from djobs.codec import jsonable
from djobs.ui import validate

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
Headers = list[tuple[str, str]]
Body = bytes | Iterable[bytes]
Response = tuple[int, Headers, Body]


class HTTPError(Exception):
    """An error answered as `{"error": message}` with this status (and extra JSON fields)."""

    def __init__(self, status: int, message: str, headers: Headers | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or []
        self.extra = extra


REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 301: "Moved Permanently", 303: "See Other",
    400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    409: "Conflict", 413: "Content Too Large", 415: "Unsupported Media Type", 421: "Misdirected Request",
    500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
}  # fmt: skip


def status_line(code: int) -> str:
    return f"{code} {REASONS.get(code, 'Unknown')}"


def json_bytes(payload: Any) -> bytes:
    """JSON of any djobs record. ASCII escapes keep a stored lone surrogate (which UTF-8 cannot carry) from
    breaking the response: a bad row shows as such instead of failing the whole listing."""
    return json.dumps(jsonable(payload), ensure_ascii=True, separators=(",", ":")).encode("ascii")


SECURITY_HEADERS: Headers = [
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
]


def json_response(status: int, payload: Any, extra: Headers | None = None) -> Response:
    body = json_bytes(payload)
    return status, [
        ("Content-Type", "application/json; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Cache-Control", "no-store"),
        *SECURITY_HEADERS,
        *(extra or []),
    ], body


def error_response(status: int, message: str, headers: Headers | None = None, **extra: Any) -> Response:
    return json_response(status, {"error": message, **extra}, headers)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON can carry")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def _nesting(data: bytes) -> int:
    """The deepest bracket nesting of a JSON text, outside strings (a linear scan that never recurses)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in data:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_json(data: bytes) -> Any:
    """A request body as JSON, strictly (see the module docstring); HTTPError 400 when it is not."""
    # The body's own brackets: one more than the args inside it (the body is an object around them).
    if _nesting(data) > validate.MAX_NESTING + 2:
        raise HTTPError(400, f"bad JSON body: nested deeper than {validate.MAX_NESTING} levels")
    try:
        text = data.decode("utf-8")
        value = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise HTTPError(400, "bad JSON body: nested too deep") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise HTTPError(400, f"bad JSON body: {str(exc)[:200]}") from None
    bad = validate.unencodable(value)
    if bad is not None:
        raise HTTPError(400, f"bad JSON body: {bad}")
    return value


class Request:
    """The parts of a WSGI environ the API reads."""

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        raw = str(environ.get("PATH_INFO", ""))
        # WSGI hands the path over as latin-1 decoded bytes; names may be UTF-8.
        self.path = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        self.script_name = str(environ.get("SCRIPT_NAME", ""))
        try:
            pairs = parse_qs(str(environ.get("QUERY_STRING", "")), keep_blank_values=True, max_num_fields=100)
        except ValueError:
            pairs = {}
            self.bad_query = True
        else:
            self.bad_query = False
        self.query = {k: v[-1] for k, v in pairs.items()}
        self._body: Any = None
        self._body_read = False

    def header(self, name: str) -> str | None:
        value = self.environ.get("HTTP_" + name.upper().replace("-", "_"))
        return str(value) if value is not None else None

    def arg(self, name: str) -> str | None:
        value = self.query.get(name)
        return value if value not in (None, "") else None

    def int_arg(self, name: str, default: int, low: int, high: int) -> int:
        text = self.arg(name)
        if text is None:
            return default
        try:
            value = int(text) if len(text) <= 20 else None
        except ValueError:
            value = None
        if value is None:
            raise HTTPError(400, f"{name} must be an integer, got {text[:40]!r}")
        if value < low or value > high:
            raise HTTPError(400, f"{name} must be between {low} and {high}, got {value}")
        return value

    def name_arg(self, name: str, what: str | None = None) -> str | None:
        """A filter naming a queue, type or job: checked like a stored name, so it can reach the database."""
        value = self.arg(name)
        if value is not None:
            problem = validate.name_problem(value)
            if problem:
                raise HTTPError(400, f"{what or name} {problem}")
        return value

    def json(self) -> Any:
        """The request body as JSON (None when empty)."""
        if self._body_read:
            return self._body
        self._body_read = True
        text = self.environ.get("CONTENT_LENGTH") or "0"
        try:
            length = int(text) if len(str(text)) <= 20 else -1
        except ValueError:
            length = -1
        if length < 0:
            raise HTTPError(400, "bad Content-Length")
        if length > validate.MAX_BODY:
            raise HTTPError(413, f"request body over {validate.MAX_BODY} bytes")
        data = self.environ["wsgi.input"].read(length) if length > 0 else b""
        if not data.strip():
            return None
        # JSON only: a page elsewhere cannot send this type without a CORS preflight we never answer.
        ctype = str(self.environ.get("CONTENT_TYPE") or "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise HTTPError(415, f"send the body as Content-Type: application/json (got {ctype[:60] or 'none'})")
        self._body = parse_json(data)
        return self._body

    def fields(self, *allowed: str) -> dict[str, Any]:
        """The body as an object holding only `allowed` fields ({} when empty); 400 otherwise."""
        body = self.json()
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise HTTPError(400, f"the body must be a JSON object (fields: {', '.join(allowed) or 'none'})")
        unknown = sorted(str(k)[:40] for k in body if k not in allowed)
        if unknown:
            raise HTTPError(400, f"unknown field(s) {', '.join(unknown)}; allowed: {', '.join(allowed) or 'none'}")
        for key in allowed:
            if body.get(key) is not None and not isinstance(body[key], str):
                raise HTTPError(400, f"{key} must be a string")
        return body

    def option(self, name: str) -> str | None:
        """An action option from the query string or, failing that, the JSON body."""
        value = self.arg(name)
        if value is not None:
            return value
        body = self.json()
        if isinstance(body, dict) and body.get(name) not in (None, ""):
            return str(body[name])
        return None

    def reason(self, verb: str) -> str:
        """The reason stored with a pause or cancel: the caller's, else who did it from where."""
        given = self.option("reason")
        if given:
            problem = validate.text_problem(given)
            if problem:
                raise HTTPError(400, f"reason {problem}")
            return given
        user = self.environ.get("REMOTE_USER")
        return f"{verb} from the web UI" + (f" by {user}" if user else "")
