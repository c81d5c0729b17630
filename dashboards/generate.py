#!/usr/bin/env python3
"""Render dashboards/json/*.json and docs/dashboards.md from dashboards/qpudash/.

    python dashboards/generate.py            # rewrite the JSON and the panel reference
    python dashboards/generate.py --check    # exit 1 if a committed file differs from the generator

Thresholds, the SLO objective, runbook links and dashboard uids come from alerts/config.yaml.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep dashboards/ free of __pycache__

from qpudash import check_files, output_files  # noqa: E402

JSON_DIR = HERE / "json"
DOCS = HERE.parent / "docs" / "dashboards.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare instead of writing")
    args = parser.parse_args(argv)
    files = output_files(JSON_DIR, DOCS)
    if args.check:
        problems = check_files(files, JSON_DIR)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python dashboards/generate.py", file=sys.stderr)
        return 1 if problems else 0
    JSON_DIR.mkdir(exist_ok=True)
    for path, text in files.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(HERE.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
