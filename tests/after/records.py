"""Shared helpers of the after-tests: the repository root and the JSON-lines records of the nbval run."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def read_jsonl(folder: Path, pattern: str) -> list[dict]:
    return [json.loads(line) for f in sorted(folder.glob(pattern))
            for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
