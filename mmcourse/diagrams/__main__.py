"""``python -m mmcourse.diagrams [--out DIR] [NAME ...]``: write the diagram gallery and report layout problems.

Writes every diagram (or the named ones) as PNG and SVG into ``DIR`` (default ``_build/diagrams``), plus a
360-pixel-wide PNG of each under ``DIR/phone`` for checking legibility on a phone; exits with status 1 if any
diagram has a layout problem (see ``mmcourse.diagrams.checks``).
"""

from __future__ import annotations

import argparse
import sys

from mmcourse.diagrams.gallery import GALLERY, write_gallery


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, write the gallery, print one line per diagram; 0 when every diagram is clean."""
    parser = argparse.ArgumentParser(prog="python -m mmcourse.diagrams", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"diagrams to draw (default: all): {', '.join(GALLERY)}")
    parser.add_argument("--out", default="_build/diagrams", help="output folder (default: _build/diagrams)")
    parser.add_argument("--no-svg", action="store_true", help="write PNG only")
    args = parser.parse_args(argv)
    problems = write_gallery(args.out, args.names or None, svg=not args.no_svg)
    for name, found in problems.items():
        print(f"{'ok  ' if not found else 'FIX '} {name}")
        for p in found:
            print(f"       - {p}")
    print(f"wrote {len(problems)} diagrams to {args.out}")
    return 1 if any(problems.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
