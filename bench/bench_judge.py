"""Benchmark `owleval judge`: the six published answer sets (6 models x 82 answers = 492 requests) against a
loopback chat-completions judge that takes 50 ms per request, at --concurrency 1 and 16, side by side.

The judge server runs in its own process (tests/chat_server.py, grading from a hash of the answer), so the
timing is the client's: prompt rendering, image encoding, HTTP, parsing, the synced log, grades.csv. Also
prints what judging the published sets would send to a hosted judge (requests, estimated prompt tokens).

Then times `owleval report --judge` for 6 models against the same report without it (bench_report.judge_case).

Run: .venv/bin/python bench/bench_judge.py [--latency 0.05] [--concurrency 16] [--json] [--skip-report]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHARED_DATA = Path(os.environ.get("OWLEVAL_SHARED_DATA", ROOT.parent / "shared" / "owleval_82q"))

SERVER = """
import hashlib, json, re, sys, threading
sys.path.insert(0, sys.argv[1])
from tests.chat_server import ChatServer
from tests.judge_helpers import prompt_of, quoted_field
def grade(body):
    answer = str(quoted_field(prompt_of(body), "Answer to grade"))
    letter = "ABCD"[hashlib.sha256(answer.encode()).digest()[0] % 4]
    return json.dumps({"grade": letter, "reason": "graded from a hash of the answer"})
server = ChatServer(delay=float(sys.argv[2]), reply=grade).start()
print(server.port, flush=True)
sys.stdin.read()  # serve until the benchmark closes stdin
server.close()
"""


def cpu_seconds(pid: int) -> float | None:
    """User+system CPU time of a process so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gpt4o_image_tokens(width: int, height: int) -> int:
    """OpenAI's published rule for GPT-4o images at detail=high: fit in 2048x2048, shortest side down to 768,
    then 170 tokens per 512-px tile plus 85."""
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    width, height = width * scale, height * scale
    return 85 + 170 * math.ceil(width / 512) * math.ceil(height / 512)


def cost_estimate(items, data_dir: Path) -> dict[str, float]:
    """Requests and tokens of one greedy pass over ``items`` (prompt text at ~4 characters a token)."""
    from PIL import Image

    sizes = {}
    for item in items:
        if item.image not in sizes:
            with Image.open(item.image) as img:
                sizes[item.image] = img.size
    text_chars = sum(len(item.prompt) for item in items)
    image_bytes = sum(item.image.stat().st_size for item in items)
    image_tokens = sum(gpt4o_image_tokens(*sizes[item.image]) for item in items)
    reply_tokens = 60  # {"grade": "B", "reason": one or two sentences}
    return {
        "requests": len(items),
        "prompt_chars": text_chars,
        "prompt_text_tokens_est": round(text_chars / 4),
        "image_tokens_est_gpt4o_high": image_tokens,
        "image_tokens_est_gpt4o_low": 85 * len(items),
        "completion_tokens_est": reply_tokens * len(items),
        "image_bytes_per_request": round(image_bytes / len(items)),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--latency", type=float, default=0.05, help="seconds the judge takes per request")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    parser.add_argument("--skip-report", action="store_true", help="skip the `owleval report --judge` timing")
    args = parser.parse_args()

    from owleval.adapters.base import LoadOptions
    from owleval.answers import PUBLISHED_MODELS, import_answer_files
    from owleval.fetch import install_dataset
    from owleval.judge.run import load_answer_sets, make_items, run_judge, split_options
    from owleval.questions import load_questions

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        data = tmp / "owleval_82q"
        install_dataset(data, SHARED_DATA)
        os.environ["OWLEVAL_DATA"] = str(data)
        questions = load_questions(data)
        import_answer_files([data / "answer" / name for name in PUBLISHED_MODELS], tmp / "answers", questions)
        items = make_items(load_answer_sets([tmp / "answers"], questions), questions, data)

        server = subprocess.Popen([sys.executable, "-c", SERVER, str(ROOT), str(args.latency)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            base_url = f"http://127.0.0.1:{server.stdout.readline().strip()}/v1"

            def timed(concurrency: int) -> tuple[float, int, float, float | None]:
                settings, options = split_options("openai", {"base_url": base_url}, concurrency=concurrency)
                t0, cpu0, server0 = time.perf_counter(), time.process_time(), cpu_seconds(server.pid)
                result = run_judge("openai", answers=[tmp / "answers"], load_options=LoadOptions("tiny-vlm", options=options),
                                   settings=settings, out=tmp / f"judged-c{concurrency}", data_dir=data, overwrite=True)
                server1 = cpu_seconds(server.pid)
                server_cpu = None if server0 is None or server1 is None else server1 - server0
                return time.perf_counter() - t0, result.counts["judged"], time.process_time() - cpu0, server_cpu

            timed(args.concurrency)  # warm up: imports, image encoding caches of this process
            fast, n_fast, client_fast, server_fast = timed(args.concurrency)
            slow, n_slow, client_slow, server_slow = timed(1)
        finally:
            server.stdin.close()
            server.wait(timeout=10)
        cost = cost_estimate(items, data)
        if not args.skip_report and not args.json:  # the other half of the judge path: the report that reads its grades
            from bench_report import judge_case

            judge_case(questions, data, repeat=3)

    figures = {
        "answers": len(items),
        "latency_s": args.latency,
        "concurrency_1_s": round(slow, 3),
        f"concurrency_{args.concurrency}_s": round(fast, 3),
        "speedup": round(slow / fast, 2),
        "judged": [n_slow, n_fast],
        "client_cpu_s": [round(client_slow, 2), round(client_fast, 2)],
        "server_cpu_s": [None if server_slow is None else round(server_slow, 2), None if server_fast is None else round(server_fast, 2)],
        "cpus": os.cpu_count(),
        "floor_concurrency_1_s": round(len(items) * args.latency, 2),
        "cost_one_greedy_pass": cost,
    }
    if not args.json:
        print(f"{len(items)} answers (6 published sets), judge latency {args.latency * 1000:.0f} ms per request")
        print(f"  --concurrency 1:  {slow:6.2f} s  (floor {len(items) * args.latency:.1f} s: one request at a time)")
        print(f"  --concurrency {args.concurrency}: {fast:6.2f} s  -> {slow / fast:.1f}x faster "
              f"(floor {math.ceil(len(items) / args.concurrency) * args.latency:.1f} s)")
        if server_fast is not None:
            print(f"  CPU at --concurrency {args.concurrency}: judge client {client_fast:.2f} s, loopback server {server_fast:.2f} s "
                  f"(decoding ~{cost['image_bytes_per_request'] / 1024:.0f} KB of base64 image per request) on {os.cpu_count()} CPUs")
        print(f"  cost of one greedy pass: {cost['requests']} requests, ~{cost['prompt_text_tokens_est']:,} prompt text tokens "
              f"(chars/4) + ~{cost['image_tokens_est_gpt4o_high']:,} image tokens (GPT-4o detail=high; "
              f"{cost['image_tokens_est_gpt4o_low']:,} at detail=low), ~{cost['completion_tokens_est']:,} completion tokens")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
