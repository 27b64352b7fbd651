"""What finding and checking a SUN message costs per tap, per layout, against the bare crypto.

usage: python tests/bench/bench_sun_layouts.py [--reads N] [--boxes B]

Baseline: `verify_sun` on the PICCData and SDMMAC alone (AES decrypt + two CMACs), the floor of any
SUN check. Measured: the driver's `classify` on the whole NDEF message (record parsing, the layout,
the key lookup, the counter store) for each layout, and for random-UID tags with B registered
meta-read keys to try. Baseline and each layout take turns in short blocks so both see the same
machine. Prints ratios (classify / baseline): near 1 means the layout handling adds little.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from drivers.cards.ndef import NLEN_SIZE  # noqa: E402
from drivers.cards.pcsc import PcscCardReader, RawRead  # noqa: E402
from drivers.cards.sun import make_sun_message, verify_sun  # noqa: E402
from drivers.cards.sun_url import SunLayout  # noqa: E402
from drivers.cards.virtual_card import SdmTemplate  # noqa: E402

UID = "04DE5F1EACC040"
KEYS = (bytes(range(16)), bytes(range(16, 32)))
LAYOUTS = {
    "query picc_data/cmac": ("box.example/t?picc_data={picc}&cmac={mac}", SunLayout()),
    "query e/c": ("ntag.nxp.com/424?e={picc}&c={mac}", SunLayout(picc_param="e", mac_param="c")),
    "path": ("box.example/t/{picc}/{mac}", SunLayout(url_style="path")),
    "mac input offset": ("box.example/t?picc_data={mac_input}{picc}&cmac={mac}", None),
    "random uid": ("box.example/t?picc_data={picc}&cmac={mac}", SunLayout(random_uid=True)),
}


def messages(url: str, n: int) -> tuple[SdmTemplate, list[bytes]]:
    template = SdmTemplate.from_url(url)
    return template, [template.mirror(bytes.fromhex(UID), i + 1, *KEYS)[NLEN_SIZE:] for i in range(n)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=3000)
    ap.add_argument("--boxes", type=int, default=200, help="distinct meta-read keys a random-UID tap may try")
    ap.add_argument("--block", type=int, default=100)
    args = ap.parse_args()
    decoys = [bytes([i % 256, i // 256]) + bytes(14) for i in range(1, args.boxes)]
    print(f"{args.reads} reads per side, blocks of {args.block}; random uid tries up to {args.boxes} meta-read keys")
    for name, (url, layout) in LAYOUTS.items():
        template, msgs = messages(url, args.reads)
        layout = layout or SunLayout(mac_input_offset=template.mac_input_offset)
        bare = [make_sun_message(UID, i + 1, *KEYS) for i in range(args.reads)]
        registry = {UID: KEYS}
        reader = PcscCardReader(sun_keys=registry.get, layout=layout, meta_read_keys=lambda: [*decoys, KEYS[0]])
        reader_uid = "08A1B2C3" if layout.random_uid else UID
        base_t = driver_t = 0.0
        for start in range(0, args.reads, args.block):
            t = time.perf_counter()
            for picc, mac in bare[start:start + args.block]:
                verify_sun(picc, mac, *KEYS)
            base_t += time.perf_counter() - t
            t = time.perf_counter()
            for msg in msgs[start:start + args.block]:
                read = reader.classify(RawRead(reader_uid, msg))
            driver_t += time.perf_counter() - t
            assert read.sun_verified, read
        print(f"{name:22s} baseline {base_t / args.reads * 1e6:7.1f} us/read   classify "
              f"{driver_t / args.reads * 1e6:8.1f} us/read   ratio {driver_t / base_t:6.2f}")


if __name__ == "__main__":
    main()
