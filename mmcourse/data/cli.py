"""``mmcourse data list | download NAME | verify NAME | info NAME`` — the real datasets from the shell.

Wired into ``mmcourse/cli.py`` (which calls :func:`add_arguments` and :func:`run`). Chapter 00 explains it.
"""

from __future__ import annotations

import argparse
import sys
import warnings

from mmcourse.data import avmnist, cifar10
from mmcourse.data.download import (
    CorruptFileError,
    DatasetNotAvailable,
    DatasetSource,
    data_root,
    fetch,
    status,
    verify_file,
)
from mmcourse.io import DiskFullError, FolderNotWritable

SOURCES: dict[str, tuple[DatasetSource, ...]] = {
    "cifar10": (cifar10.SOURCE,),
    "mnist": (avmnist.MNIST,),
    "fsdd": (avmnist.FSDD,),
    "avmnist": (avmnist.MNIST, avmnist.FSDD),
}
BUNDLED = {"digits": "scikit-learn's 1,797 8x8 handwritten digits; bundled with scikit-learn, nothing to download "
                     "(UCI Optical Recognition of Handwritten Digits, CC BY 4.0)",
           "avdigits": "AV-digits: 500 spoken digits by 5 speakers (FSDD subset shipped with mmcourse, CC BY-SA 4.0) "
                       "paired with scikit-learn's digits, one speaker held out; nothing to download. "
                       "load_avdigits(source=ARCHIVE) reads a full FSDD archive (e.g. after `download fsdd`)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``list | download | verify | info`` to the ``data`` sub-command's parser."""
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    sub.add_parser("list", help="the datasets and whether they are in the cache")
    for action, text in (("download", "download (and verify) a dataset into the cache"),
                         ("verify", "check the cached files of a dataset against their checksums"),
                         ("info", "what a dataset is, its licence, files and where they go")):
        p = sub.add_parser(action, help=text)
        p.add_argument("name", help=f"one of: {', '.join([*SOURCES, *BUNDLED])}")


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``data`` on an existing set of sub-commands."""
    p = subparsers.add_parser("data", help="list | download | verify | info the real datasets")
    add_arguments(p)
    p.set_defaults(_run=run)
    return p


def _sources(name: str) -> tuple[DatasetSource, ...]:
    if name not in SOURCES:
        raise KeyError(f"unknown dataset {name!r}; known: {', '.join([*SOURCES, *BUNDLED])}")
    return SOURCES[name]


def run(args: argparse.Namespace) -> int:
    """Run one ``mmcourse data`` action; returns the exit status (0 ok, 1 failed, 2 usage).

    ``verify`` succeeds only when every file matches a pinned checksum: a file with none is "unverified" (1).
    """
    try:
        return _run(args)
    except (FolderNotWritable, DiskFullError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


def _state(files: list[str]) -> str:
    if all(f.startswith("ok") for f in files):
        return "cached"
    if all(f.startswith(("ok", "unverified")) for f in files):
        return "cached, unverified"
    return "not cached"


def _run(args: argparse.Namespace) -> int:
    action = getattr(args, "data_command", None)
    if action in (None, "list"):
        print(f"data folder: {data_root()}  (set MMCOURSE_DATA to change it)")
        for name, sources in SOURCES.items():
            files = [s for src in sources for s in status(src, data_root() / src.name).values()]
            state = _state(files)
            what = sources[0].description if len(sources) == 1 else " + ".join(s.name for s in sources) + \
                " (AV-MNIST: MNIST images paired with spoken digits by label)"
            print(f"  {name:<9} {state:<18} {what}")
        for name, text in BUNDLED.items():
            print(f"  {name:<9} {'bundled':<18} {text}")
        return 0
    name = args.name
    if name in BUNDLED:
        print(f"{name}: {BUNDLED[name]}")
        return 0
    try:
        sources = _sources(name)
    except KeyError as e:
        print(e.args[0], file=sys.stderr)
        return 2
    ok = True
    for src in sources:
        folder = data_root() / src.name
        if action == "info":
            print(f"{src.name}: {src.description}\n  licence: {src.license}\n  homepage: {src.homepage}")
            for rf in src.files:
                check = (f"pinned {rf.algorithm} {rf.checksum}" if rf.checksum else
                         "no published checksum: it can be checked as an archive but never verified")
                print(f"  {rf.url}\n    -> {folder / rf.filename}  ({check})")
        elif action == "verify":
            for fname, state in status(src, folder).items():
                print(f"{src.name}/{fname}: {state}")
                ok &= state.startswith("ok")
        elif action == "download":
            try:
                with warnings.catch_warnings():  # an unverified file is reported below, once
                    warnings.simplefilter("ignore")
                    paths = fetch(src, folder)
                for rf in src.files:
                    path = paths[rf.filename]
                    state = "ok (pinned checksum matches)" if rf.checksum else verify_file(src, rf, path)
                    print(f"{src.name}/{rf.filename}: {state} ({path})")
            except (DatasetNotAvailable, CorruptFileError) as e:
                print(f"error: {e}", file=sys.stderr)
                ok = False
    return 0 if ok else 1
