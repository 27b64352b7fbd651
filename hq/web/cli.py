"""`handover-hq user add NAME --role ROLE [--db URL]`: a login for the monitoring centre's page. The
password is read from the terminal (asked twice) or, when stdin is not a terminal, from its first
line — never from argv, where `ps` and shell history would keep it, and never printed."""
from __future__ import annotations

import getpass
import sys

from hq.db import Database
from hq.web.auth import ROLES, Auth, AuthError


def register(subparsers) -> None:
    user = subparsers.add_parser("user", help="logins for the monitoring centre's page").add_subparsers(
        dest="user_command", required=True)
    add = user.add_parser("add", help="create a user (password from the prompt or stdin's first line)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--db", default="hq.db", help="SQLite file (default hq.db) or postgresql://...")
    add.set_defaults(func=_user_add)


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise AuthError("the two passwords differ")
    return first


def _user_add(args) -> int:
    password = _read_password()
    db = Database(args.db, retry_for=0).create_schema()
    try:
        Auth(db).add_user(args.name, args.role, password, by="cli")
    finally:
        db.close()
    print(f"user {args.name} added with role {args.role}")
    return 0
