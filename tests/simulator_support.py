"""``tw provider serve acme`` on a free loopback port, for tests that drive the CLI or the library against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_PROVIDERS = ROOT / "sample_data" / "providers.toml"


@contextmanager
def serving_acme(tmp_path: Path, secrets: dict[str, str], *, store: str = "sim-acme.db") -> Iterator[Path]:
    """Start the simulator (secrets from ``secrets``); yield a providers file whose acme points at it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "--providers", str(SAMPLE_PROVIDERS), "--json", "provider", "serve", "acme",
         "--port", "0", "--store", str(tmp_path / store), "--quiet"],
        cwd=ROOT, env={**os.environ, **secrets}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        url = json.loads(process.stdout.readline() if process.stdout else "{}")["url"]
        providers = tmp_path / "providers.toml"
        providers.write_text(
            SAMPLE_PROVIDERS.read_text().replace('base_url = "http://127.0.0.1:8701"', f'base_url = "{url}"'))
        yield providers
    finally:
        process.terminate()
        process.wait(timeout=10)
