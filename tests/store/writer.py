"""A store writer run as a real subprocess by the crash and concurrency tests.

Usage: python writer.py STORE SEED ITERATIONS [BIG_BYTES]
       python writer.py --pull STORE REMOTE

Prints "ready" once the store is open, then for each iteration puts content,
records a step and every third iteration a build, printing "step N" lines.
"""

from __future__ import annotations

import random
import sys

from reprobuild.store import BuildRecord, Output, StepRecord, Store


def main() -> int:
    if sys.argv[1] == "--pull":
        with Store.open(sys.argv[2]) as store:
            print("ready", flush=True)
            store.pull(sys.argv[3])
        return 0
    path, seed, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    big = int(sys.argv[4]) if len(sys.argv) > 4 else 6 << 20
    rng = random.Random(seed)
    with Store.open(path) as store:
        print("ready", flush=True)
        keys: list[str] = []
        for i in range(iterations):
            size = big if rng.random() < 0.3 else rng.randrange(0, 300_000)
            data = rng.randbytes(size)
            blob = store.put_bytes(data)
            key = f"{seed:04d}{i:060d}"
            rec = StepRecord(
                kind="test",
                key=key,
                inputs=tuple(keys[-2:]),
                outputs=(Output("out.bin", blob.sha256, blob.size),),
                versions={"writer": "1"},
            )
            store.record_step(key, rec)
            keys.append(key)
            if i % 3 == 2:
                store.record_build(
                    "crashy",
                    BuildRecord(recipe="crashy", steps=tuple(keys[-3:]), outputs=rec.outputs),
                )
            print(f"step {i}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
