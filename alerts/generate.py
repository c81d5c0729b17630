#!/usr/bin/env python3
"""Render alerts/rules/*.yml from alerts/config.yaml.

    python alerts/generate.py                      # rewrite alerts/rules/*.yml
    python alerts/generate.py --check              # exit 1 if the committed rules differ
    python alerts/generate.py --config fast.yaml --out /tmp/rules   # override merged over config.yaml

--config FILE is merged over alerts/config.yaml key by key (lists replace), so an override holds only
the keys it changes; an unknown key is an error (exit 2), so a typo cannot silently keep production timings.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.dont_write_bytecode = True  # keep alerts/ free of __pycache__ (it is not a package of the project)

from rulegen import ConfigError, load_config, render_all  # noqa: E402

DEFAULT_CONFIG = HERE / "config.yaml"
DEFAULT_OUT = HERE / "rules"


def check(rendered: dict[str, str], out: Path) -> list[str]:
    """Names of files in out that are missing, different, or not produced by the generator."""
    problems = []
    for name, text in rendered.items():
        path = out / name
        if not path.exists():
            problems.append(f"{path}: missing")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the config")
    for path in sorted(out.glob("*.yml")):
        if path.name not in rendered:
            problems.append(f"{path}: not produced by the generator")
    return problems


def write(rendered: dict[str, str], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for name, text in rendered.items():
        (out / name).write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="override YAML merged over alerts/config.yaml")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default alerts/rules)")
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    try:
        rendered = render_all(load_config(DEFAULT_CONFIG, args.config))
    except (ConfigError, KeyError, TypeError, ValueError) as exc:
        detail = f"missing key {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"generate.py: config error: {detail}", file=sys.stderr)
        return 2
    if args.check:
        problems = check(rendered, args.out)
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print("run: python alerts/generate.py", file=sys.stderr)
        return 1 if problems else 0
    write(rendered, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
