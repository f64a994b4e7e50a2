"""The ``mmcourse`` command: ``doctor | exercises | grade | bench | data``."""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand -> (module, one-line help); each module has add_arguments(parser) (optional) and run(args)
COMMANDS = {
    "doctor": ("mmcourse.doctor", "show versions, device, profile and problems with a fix for each"),
    "exercises": ("mmcourse.authoring.exercises", "regenerate exercises/ from solutions/"),
    "grade": ("mmcourse.grading.grader", "execute a notebook and report its points"),
    "bench": ("mmcourse.bench_cli", "run the benchmarks (or ingest a gpu-check results file) into RESULTS.md tables"),
    "data": ("mmcourse.data.cli", "list | download | verify | info the real datasets"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mmcourse", description="multimodal deep learning course tools")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_)
        try:
            mod = importlib.import_module(module)
        except ImportError as e:
            p.set_defaults(_error=f"`mmcourse {name}` is not available: {e}")
            continue
        if hasattr(mod, "add_arguments"):
            mod.add_arguments(p)
        elif hasattr(mod, "add_parser_arguments"):
            mod.add_parser_arguments(p)
        p.set_defaults(_run=mod.run)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_error", None):
        print(args._error, file=sys.stderr)
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
