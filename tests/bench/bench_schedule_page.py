"""What the schedule upload page adds over the import itself (issue 16): the same large dispatch posted to
`POST /api/schedule` on the real app (`WebBoard`, real SQLite, an admin's session: multipart upload, the
import, the audit row, the publish step — no terminal has reported these sites, so nothing is sent), against
`hq.schedule.import_schedule` called directly on a fresh database, in the same run. Prints figures; asserts
nothing.

    .venv/bin/python tests/bench/bench_schedule_page.py [--routes 2000] [--runs 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_schedule import dispatch  # noqa: E402
from hq.db import Database  # noqa: E402
from hq.schedule import import_schedule, import_sites  # noqa: E402
from hq.web.app import WebBoard  # noqa: E402
from hq.web.auth import CSRF_HEADER, Auth  # noqa: E402
from tests.conftest import free_port  # noqa: E402

PASSWORD = "bench password 1"
BOUNDARY = "benchboundary0123456789"


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fresh(folder: Path, name: str, branches: int) -> str:
    url = str(folder / name)
    db = Database(url).create_schema()
    import_sites(db, ("site_id,name,type\nVLT-01,vault,vault\n" + "".join(
        f"BR-{i:03d},branch {i},branch\n" for i in range(branches))).encode())
    Auth(db).add_user("root", "admin", PASSWORD)
    db.close()
    return url


def direct(url: str, data: bytes) -> float:
    db = Database(url)
    started = time.perf_counter()
    import_schedule(db, data, "d.csv")
    took = time.perf_counter() - started
    db.close()
    return took


def through_page(url: str, data: bytes) -> float:
    port = free_port()
    web = WebBoard(url, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    opener = urllib.request.build_opener(NoRedirect)
    try:
        try:
            opener.open(urllib.request.Request(base + "/login", urllib.parse.urlencode(
                {"name": "root", "password": PASSWORD}).encode()), timeout=30)
        except urllib.error.HTTPError as exc:
            cookie = exc.headers["Set-Cookie"].split(";")[0]
        with opener.open(urllib.request.Request(base + "/api/me", headers={"Cookie": cookie}), timeout=30) as r:
            csrf = json.load(r)["csrf"]
        body = (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="d.csv"\r\n\r\n'.encode()
                + data + f"\r\n--{BOUNDARY}--\r\n".encode())
        request = urllib.request.Request(base + "/api/schedule", data=body, headers={
            "Cookie": cookie, CSRF_HEADER: csrf, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
        started = time.perf_counter()
        with opener.open(request, timeout=600) as r:
            answer = json.load(r)
        took = time.perf_counter() - started
        assert answer["version"] == 1 and not answer["errors"], answer
        return took
    finally:
        web.stop()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--routes", type=int, default=2000)
    p.add_argument("--branches", type=int, default=300)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    data = dispatch(args.routes, args.branches)
    raw, page = [], []
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        for n in range(args.runs):       # alternated, so the machine's load falls on both alike
            raw.append(direct(fresh(folder, f"direct{n}.db", args.branches), data))
            page.append(through_page(fresh(folder, f"page{n}.db", args.branches), data))
    r, w = statistics.median(raw), statistics.median(page)
    print(f"dispatch: {3 * args.routes} rows, {len(data) // 1024} KiB; median of {args.runs}")
    print(f"import_schedule directly: {r * 1000:.0f} ms ({', '.join(f'{x * 1000:.0f}' for x in raw)})")
    print(f"POST /api/schedule (upload, import, audit, publish step): {w * 1000:.0f} ms "
          f"({', '.join(f'{x * 1000:.0f}' for x in page)}) = {w / r:.2f}x the direct import")


if __name__ == "__main__":
    main()
