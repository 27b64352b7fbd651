"""The long fuzz run: the oracles of tests/unit/test_poison_fuzz.py over >= 1,000,000 inputs each.

    .venv/bin/python tools/fuzz_long.py header downlink --count 1000000 --seed 1

Inputs are random bytes, random JSON (any depth up to 6,000), and mutations of valid seeds (bit and
byte flips, cuts, insertions, spliced brackets); not coverage-guided. Prints, per parser, the inputs
run, how many the parser accepted and refused, and the unexpected exceptions (0 is the goal), with
the first few inputs that caused one saved under artifacts/fuzz/.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "unit"), str(ROOT / "tests" / "integration")]

import test_poison_fuzz as t  # noqa: E402

VALID_HEADER = t.header_bytes({"format": 1, "kind": "tasks", "device": "dev-1", "created": "2026-11-22T08:00:00Z",
                               "expires": "2026-11-29T08:00:00Z", "seq": 3, "signer": "0123456789abcdef",
                               "payload_size": 10, "compression": "none", "content": "json"})


def rand_json(r: random.Random, depth: int = 0):
    pick = r.random()
    if depth > 4 or pick < 0.5:
        return r.choice([None, True, False, r.randint(-10**20, 10**20), r.random() * 1e6, "",
                         "".join(chr(r.randint(0, 0x2FFF)) for _ in range(r.randint(0, 12)))])
    if pick < 0.75:
        return [rand_json(r, depth + 1) for _ in range(r.randint(0, 4))]
    return {rand_text(r): rand_json(r, depth + 1) for _ in range(r.randint(0, 4))}


def rand_text(r: random.Random) -> str:
    return r.choice(["task_id", "escorts", "route", "vehicle", "boxes", "box_keys", "min_escorts", "settings",
                     "site.min_escorts", "screen.language", "person_id", "people", "msg_id", "v", "site_id",
                     "seq", "kind", "device", "#", "a/b", ""]) if r.random() < 0.7 else \
        "".join(chr(r.randint(32, 0x4E00)) for _ in range(r.randint(0, 8)))


def mutate(r: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(r.randint(1, 6)):
        op = r.random()
        at = r.randint(0, len(b))
        if op < 0.3 and b:
            b[min(at, len(b) - 1)] ^= 1 << r.randint(0, 7)
        elif op < 0.5 and b:
            b[min(at, len(b) - 1)] = r.randint(0, 255)
        elif op < 0.65:
            del b[at:at + r.randint(1, 16)]
        elif op < 0.8:
            b[at:at] = bytes(r.randint(0, 255) for _ in range(r.randint(1, 8)))
        else:
            n = r.choice([1, 10, 100, 1000, 6000])
            b[at:at] = r.choice([b"[", b"{\"a\":", b"\""]) * n
    return bytes(b)


def gen_header(r: random.Random) -> tuple:
    p = r.random()
    if p < 0.2:
        return (bytes(r.randint(0, 255) for _ in range(r.randint(0, 64))),)
    if p < 0.5:
        fields = json.loads(VALID_HEADER[6:])
        fields[r.choice(list(fields))] = rand_json(r)
        return (t.header_bytes(fields),)
    return (mutate(r, VALID_HEADER),)


def gen_streamed(r: random.Random) -> tuple:
    if r.random() < 0.1:
        return (b"HTB2" + bytes(r.randint(0, 255) for _ in range(r.randint(0, 64))),)
    data = mutate(r, t.VALID_STREAMED)
    return (data[:r.randint(0, len(data))] if r.random() < 0.2 else data,)


def gen_safejson(r: random.Random) -> tuple:
    raw = json.dumps(rand_json(r)).encode()
    return (mutate(r, raw) if r.random() < 0.6 else raw,)


def gen_downlink(r: random.Random) -> tuple:
    kind = r.choice(sorted(t.SEEDS) + ["nonsense"])
    seed = json.loads(json.dumps(t.SEEDS.get(kind, t.SEEDS["config"])))
    seed["msg_id"] = f"m{r.getrandbits(48)}"
    p = r.random()
    if p < 0.4:
        target = seed["tasks"][0] if kind == "tasks" else seed
        target[r.choice(list(target) + [rand_text(r)])] = rand_json(r)
        return kind, json.dumps(seed).encode()
    return kind, mutate(r, json.dumps(seed).encode())


def gen_settings(r: random.Random) -> tuple:
    return ({rand_text(r): rand_json(r) for _ in range(r.randint(0, 4))} if r.random() < 0.9 else rand_json(r),)


def gen_model(r: random.Random) -> tuple:
    base = t.task() if r.random() < 0.5 else {"person_id": "E1", "name": "N", "role": "escort"}
    base[r.choice(list(base) + ["valid_from", "company", "origin"])] = rand_json(r)
    return (base,)


def gen_uplink(r: random.Random) -> tuple:
    leaf = r.choice(["journal", "urgent", "status", "health", "reply"])
    entry = {"id": "dev-f:1", "seq": 1, "ts": "2026-11-23T01:00:00.000Z", "kind": "box_read", "task_id": None,
             "body": rand_json(r), "prev_hash": "0" * 64, "hash": "0" * 64}
    raw = json.dumps({"v": 1, "device": "dev-f", "entries": [entry], "entry": entry}).encode()
    return leaf, mutate(r, raw) if r.random() < 0.6 else raw


def targets() -> dict:
    device, office = t.Device(), t.Office()
    return {"header": (gen_header, t.header_oracle), "streamed": (gen_streamed, t.streamed_oracle),
            "safejson": (gen_safejson, t.safejson_oracle),
            "downlink": (gen_downlink, device.handle), "settings": (gen_settings, t.settings_oracle),
            "model": (gen_model, t.model_oracle), "uplink": (gen_uplink, office.receive)}


def run(name: str, gen, oracle, count: int, seed: int) -> int:
    r = random.Random(seed)
    out = ROOT / "artifacts" / "fuzz"
    unexpected = 0
    started = time.monotonic()
    for n in range(count):
        args = gen(r)
        try:
            oracle(*args)
        except Exception:
            unexpected += 1
            if unexpected <= 5:
                out.mkdir(parents=True, exist_ok=True)
                (out / f"{name}-{seed}-{n}.txt").write_text(repr(args)[:100000] + "\n\n" + traceback.format_exc())
        if n and n % 100000 == 0:
            print(f"  {name}: {n:,} inputs, {unexpected} unexpected, {time.monotonic() - started:.0f} s", flush=True)
    print(f"{name}: {count:,} inputs, {unexpected} unexpected exceptions, {time.monotonic() - started:.0f} s "
          f"(seed {seed})", flush=True)
    return unexpected


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("parsers", nargs="*", help="header streamed safejson downlink settings model uplink (default: all)")
    p.add_argument("--count", type=int, default=1_000_000)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    all_targets = targets()
    bad = 0
    for name in args.parsers or list(all_targets):
        gen, oracle = all_targets[name]
        bad += run(name, gen, oracle, args.count, args.seed)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
