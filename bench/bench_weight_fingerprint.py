"""Checkpoint fingerprint cost: the first fingerprint of a checkpoint (a full sha256 of every weight file) against
a later one (the cached digests, a stat per file), on a synthetic checkpoint folder of --size-mb megabytes.

    python bench/bench_weight_fingerprint.py --size-mb 1024

Prints MB/s of the full hash, the two times and their ratio, and the time a 14 GB checkpoint's first fingerprint
would take at that rate; with --out, writes them as JSON (bench/results/).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--files", type=int, default=2, help="weight shards the size is split into")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["OWLEVAL_CACHE_DIR"] = str(Path(tmp) / "cache")
        from owleval.provenance import checkpoint_fingerprint

        folder = Path(tmp) / "ckpt"
        folder.mkdir()
        (folder / "config.json").write_text('{"model_type": "llava"}')
        shard = args.size_mb // args.files
        for i in range(args.files):
            with open(folder / f"model-{i:05d}.safetensors", "wb") as fh:
                for _ in range(shard):
                    fh.write(os.urandom(1 << 20))
        started = time.perf_counter()
        first = checkpoint_fingerprint(str(folder))
        cold = time.perf_counter() - started
        started = time.perf_counter()
        second = checkpoint_fingerprint(str(folder))
        warm = time.perf_counter() - started
    assert first == second
    rate = shard * args.files / cold
    result = {
        "size_mb": shard * args.files, "files": args.files, "first_s": round(cold, 3), "cached_s": round(warm, 5),
        "ratio_first_to_cached": round(cold / warm, 1), "sha256_mb_per_s": round(rate, 1),
        "estimated_first_s_for_14_gb": round(14_000 / rate, 1),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
