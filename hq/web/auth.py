"""Who may use the monitoring centre's page: users with one role each, passwords hashed with scrypt,
sessions that lapse when idle, and an audit row for everything done (SPEC §2.5, issue 16).

The session cookie is an opaque random token (HttpOnly, SameSite=Strict); the database keeps only its
sha256, so a copy of the database opens no session. Every POST also carries the session's CSRF token in
the `X-CSRF-Token` header (the page reads it from /api/me), checked in `require_role`.
"""
from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import re
import secrets
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Awaitable, Callable

from aiohttp import web

from hq.db import Cursor, Database

ROLES = ("monitor", "vault_manager", "complaint_officer", "admin")
COOKIE = "hq_session"
CSRF_HEADER = "X-CSRF-Token"
IDLE_TIMEOUT = timedelta(minutes=15)
NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 1024         # scrypt's cost grows with it; nobody types more
# scrypt: 16 MiB and ~50 ms per hash here; the parameters are stored with each hash, so they can grow later
_N, _R, _P = 2 ** 14, 8, 1


class AuthError(ValueError):
    """A user could not be created or a password is unacceptable; the text says which rule."""


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@functools.cache
def _dummy_hash() -> str:
    """What a wrong user name is checked against, so a refused login costs the same either way (made at the
    first need: every `handover-hq` command imports this module)."""
    return hash_password(secrets.token_hex(8))


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class Session:
    name: str
    role: str
    csrf: str


class Auth:
    """Users, sessions and the audit trail, in head office's database. One instance per thread
    (it holds one `Database` connection)."""

    def __init__(self, db: Database, *, idle: timedelta = IDLE_TIMEOUT,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)):
        self.db = db
        self.idle = idle
        self.clock = clock

    # -- users ----------------------------------------------------------------------------------------

    def add_user(self, name: str, role: str, password: str, *, by: str | None = None) -> None:
        if not NAME_RE.match(name):
            raise AuthError("user name: 1-64 letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise AuthError(f"role must be one of: {', '.join(ROLES)}")
        if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
            raise AuthError(f"password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters")
        stored = hash_password(password)

        def work(cur: Cursor) -> None:
            if cur.one("SELECT 1 FROM users WHERE name = ?", (name,)):
                raise AuthError(f"user {name} exists already")
            cur.execute("INSERT INTO users (name, role, password, created) VALUES (?, ?, ?, ?)",
                        (name, role, stored, _iso(self.clock())))
            self.audit_in(cur, by, "user_added", {"user": name, "role": role})
        self.db.run(work)

    # -- sessions -------------------------------------------------------------------------------------

    def login(self, name: str, password: str) -> tuple[str, Session] | None:
        """(cookie token, session), or None when the name or password is wrong (audited either way;
        the password is never written anywhere)."""
        row = self.db.run(lambda cur: cur.one("SELECT role, password FROM users WHERE name = ?", (name,)))
        ok = check_password(password[:MAX_PASSWORD], row[1] if row else _dummy_hash()) and row is not None
        if not ok:
            known = name if NAME_RE.match(name) else None     # never echo arbitrary bytes into the audit
            self.db.run(lambda cur: self.audit_in(cur, None, "login_refused", {"user": known}))
            return None
        token, csrf, now = secrets.token_urlsafe(32), secrets.token_urlsafe(24), _iso(self.clock())

        def work(cur: Cursor) -> None:
            # sessions nobody came back to: gone at the next login, not kept for ever
            cur.execute("DELETE FROM web_sessions WHERE last_seen < ?", (_iso(self.clock() - self.idle),))
            cur.execute("INSERT INTO web_sessions (token_hash, name, csrf, created, last_seen) VALUES (?, ?, ?, ?, ?)",
                        (_token_hash(token), name, csrf, now, now))
            self.audit_in(cur, name, "login", {})
        self.db.run(work)
        return token, Session(name, row[0], csrf)

    def session(self, token: str | None, *, renew: bool = True) -> Session | None:
        """The live session of a cookie, renewed (idle timer restarted) unless `renew` is False (what a page
        does by itself, e.g. polling, is not a person being there); None if unknown or lapsed."""
        if not token or len(token) > 128:
            return None
        key, now = _token_hash(token), self.clock()

        def work(cur: Cursor) -> Session | None:
            row = cur.one("SELECT s.name, u.role, s.csrf, s.last_seen FROM web_sessions s JOIN users u "
                          "ON u.name = s.name WHERE s.token_hash = ?", (key,))
            if row is None:
                return None
            name, role, csrf, last_seen = row
            if now - datetime.fromisoformat(last_seen) > self.idle:
                cur.execute("DELETE FROM web_sessions WHERE token_hash = ?", (key,))
                self.audit_in(cur, name, "session_expired", {})
                return None
            if renew:
                cur.execute("UPDATE web_sessions SET last_seen = ? WHERE token_hash = ?", (_iso(now), key))
            return Session(name, role, csrf)
        return self.db.run(work)

    def logout(self, token: str, session: Session) -> None:
        def work(cur: Cursor) -> None:
            cur.execute("DELETE FROM web_sessions WHERE token_hash = ?", (_token_hash(token),))
            self.audit_in(cur, session.name, "logout", {})
        self.db.run(work)

    # -- audit ----------------------------------------------------------------------------------------

    def audit(self, name: str | None, action: str, detail: dict) -> None:
        self.db.run(lambda cur: self.audit_in(cur, name, action, detail))

    def audit_in(self, cur: Cursor, name: str | None, action: str, detail: dict) -> None:
        """In the caller's transaction: an action and its audit row commit together or not at all."""
        cur.execute("INSERT INTO audit (at, name, action, detail) VALUES (?, ?, ?, ?)",
                    (_iso(self.clock()), name, action, json.dumps(detail, ensure_ascii=False, sort_keys=True)))

    def audit_rows(self, limit: int = 100) -> list[dict]:
        rows = self.db.run(lambda cur: cur.all(
            "SELECT at, name, action, detail FROM audit ORDER BY at DESC LIMIT ?", (limit,)))
        return [{"at": a, "name": n, "action": act, "detail": json.loads(d)} for a, n, act, d in rows]


AUTH = web.AppKey("auth", Auth)
DB_THREAD = web.AppKey("db_thread", ThreadPoolExecutor)


async def in_db(app: web.Application, fn, *args, **kwargs):
    """fn(*args, **kwargs) on the app's one database thread (app[DB_THREAD]), never on the event loop: a
    statement may wait for SQLite's write lock while ingest holds it, and alarm pushes must not wait."""
    return await asyncio.get_running_loop().run_in_executor(app[DB_THREAD], functools.partial(fn, *args, **kwargs))
SESSION = web.RequestKey("session", Session)     # what require_role puts on the request it let through
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def require_role(*roles: str, renew: bool = True) -> Callable[[Handler], Handler]:
    """Guard an aiohttp handler: only a logged-in user whose role is one of `roles` gets through.

        @require_role("complaint_officer", "admin")
        async def complaints(request): ...          # request[SESSION] is the hq.web.auth.Session

    No session (or a lapsed one): a page (GET of text/html) is redirected to /login, anything else is
    401. A role not listed: 403, audited. A POST must carry the session's CSRF token in the X-CSRF-Token
    header (403 otherwise). `renew=False` for what a page requests by itself (polling, event streams):
    it does not keep an idle session alive. The app must hold its `Auth` at app[AUTH] and the thread its
    database is used on at app[DB_THREAD] (hq.web.app.create_app does); handlers use the database through
    `await in_db(request.app, fn, ...)`.
    """
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"require_role: unknown role(s) {sorted(unknown)}; roles are {', '.join(ROLES)}")

    def wrap(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: web.Request) -> web.StreamResponse:
            auth, app = request.app[AUTH], request.app
            session = await in_db(app, auth.session, request.cookies.get(COOKIE), renew=renew)
            if session is None:
                if request.method == "GET" and "text/html" in request.headers.get("Accept", ""):
                    raise web.HTTPFound("/login")
                raise web.HTTPUnauthorized(text="login required")
            if session.role not in roles:
                await in_db(app, auth.audit, session.name, "refused", {"path": request.path, "role": session.role})
                raise web.HTTPForbidden(text="your role may not do this")
            if request.method not in ("GET", "HEAD") and not hmac.compare_digest(
                    request.headers.get(CSRF_HEADER, ""), session.csrf):
                await in_db(app, auth.audit, session.name, "csrf_refused", {"path": request.path})
                raise web.HTTPForbidden(text="missing or wrong CSRF token")
            request[SESSION] = session
            return await handler(request)
        return guarded
    return wrap
