"""What sending door faces to head office costs the terminal: each face kept the new way (capped, stored
sealed with the device key, sealed again to head office's records key into the durable outbox) against the
old way (stored sealed with the device key only), same run, same kind of journal file; plus the size of
the faces on the wire.

usage: python tests/bench/bench_snapshot.py [--faces N] [--dir DIR]

Two faces: a face crop as the OpenCV camera sends it (200x250, within the cap: kept as it is) and a whole
640x480 frame (over 320 px: scaled and re-encoded). The two ways take turns in short blocks so both see the
same (shared, noisy) disk (give --dir on a real disk: /tmp may be memory, where fsync costs nothing). Goal:
ratio (new / old faces per second) >= 0.4 for the crop, the common case: a second durable write (the outbox
row) beside the photo's own, and one X25519 exchange. Both run in a thread, never on the agent's loop, and
door attempts are seconds apart: the milliseconds per face printed are what matters on a Pi.
"""

import argparse
import io
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey  # noqa: E402
from PIL import Image  # noqa: E402
from skimage import data  # noqa: E402

from agent.journal import Journal  # noqa: E402
from agent.sealing import Sealer  # noqa: E402
from agent.snapshots import SnapshotOutbox, cap_jpeg  # noqa: E402
from agent.store import Store  # noqa: E402

BLOCK = 10


def jpeg(img: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


def faces(n: int, base: Image.Image) -> list[bytes]:
    """n distinct JPEGs of `base` (one pixel row changed each), so every face is a new photo."""
    arr = np.asarray(base).copy()
    out = []
    for i in range(n):
        arr[i % arr.shape[0], :, :] ^= 1 + i // arr.shape[0]
        out.append(jpeg(Image.fromarray(arr)))
    return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--faces", type=int, default=200)
    p.add_argument("--dir", default=None)
    args = p.parse_args()
    hq = X25519PrivateKey.generate()
    astronaut = Image.fromarray(data.astronaut())
    cases = {"face crop 200x250": astronaut.crop((150, 30, 350, 280)),
             "frame 640x480": astronaut.resize((640, 480))}
    for name, base in cases.items():
        shots = faces(args.faces, base)
        with tempfile.TemporaryDirectory(dir=args.dir) as d:
            stores = {}
            for way in ("old", "new"):
                folder = Path(d) / way
                folder.mkdir()
                journal = Journal(folder / "journal.db")
                store = Store(journal.db, Sealer(folder / "data.key"), folder / "photos")
                stores[way] = (store, SnapshotOutbox(journal, "dev-bench", hq.public_key()))
            spent = {"old": 0.0, "new": 0.0}
            wire = []
            for start in range(0, len(shots), BLOCK):
                block = shots[start:start + BLOCK]
                store, _ = stores["old"]
                t0 = time.perf_counter()
                for shot in block:
                    store.put_photo(shot)
                spent["old"] += time.perf_counter() - t0
                store, outbox = stores["new"]
                t0 = time.perf_counter()
                for shot in block:
                    capped = cap_jpeg(shot)
                    store.put_photo(capped)
                    outbox.add(capped)
                spent["new"] += time.perf_counter() - t0
            for _, message in stores["new"][1].due():
                wire.append(len(message))
            capped_sizes = [len(cap_jpeg(s)) for s in shots[:20]]
        old, new = args.faces / spent["old"], args.faces / spent["new"]
        print(f"{name}: camera JPEG {sum(map(len, shots)) / len(shots) / 1024:.1f} KiB, kept {sum(capped_sizes) / len(capped_sizes) / 1024:.1f} KiB, "
              f"on the wire {sum(wire) / len(wire) / 1024:.1f} KiB")
        print(f"  old way (device key only) {old:.0f} faces/s, new way (capped, outbox sealed to head office) "
              f"{new:.0f} faces/s, ratio {new / old:.2f} ({1000 / new - 1000 / old:.1f} ms more per face)")


if __name__ == "__main__":
    main()
