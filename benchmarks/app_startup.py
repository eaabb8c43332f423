"""How soon `bridgedit app` serves, and how long its first clip takes, on the bundled demo model.

    python benchmarks/app_startup.py [--repeats 3]

Starts `bridgedit app` on a free local port as a user would (a new process: imports, the model loaded, the server
up) and times it to the page's first answer; then asks for one clip through Gradio's own client (the text tab's
API, the model's default settings) and times that, server side included. Writes benchmarks/results/app_startup.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
VIDEO_PROMPT = "A red rubber ball bounces up and down on a beige floor."
AUDIO_PROMPT = "A dull, soft thud, repeated each time a rubber object hits the floor."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve(out_dir: str) -> tuple[subprocess.Popen, str, float]:
    """Start `bridgedit app`; (process, URL, seconds until the page answered)."""
    port = free_port()
    bridgedit = Path(sys.executable).with_name("bridgedit")
    start = time.monotonic()
    process = subprocess.Popen(
        [str(bridgedit), "app", "--port", str(port), "--out-dir", out_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    url = f"http://127.0.0.1:{port}/"
    while True:
        if process.poll() is not None:
            raise SystemExit(f"bridgedit app exited with code {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return process, url, time.monotonic() - start
        except OSError:
            time.sleep(0.05)


def first_clip_seconds(url: str) -> float:
    from gradio_client import Client

    client = Client(url, verbose=False)
    start = time.monotonic()
    client.predict(VIDEO_PROMPT, AUDIO_PROMPT, 0, 25, 6.0, 2.0, 64, 64, 17, "clean", api_name="/text")
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    startup, clip = [], []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as out_dir:
            process, url, seconds = serve(out_dir)
            try:
                startup.append(seconds)
                clip.append(first_clip_seconds(url))
            finally:
                process.terminate()
                process.wait(timeout=30)
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs",
        "startup_seconds": startup,
        "startup_median": statistics.median(startup),
        "first_clip_seconds": clip,
        "first_clip_median": statistics.median(clip),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "app_startup.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
