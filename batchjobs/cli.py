"""The ``batchjobs`` command line: parse, build the job, run it, print a summary.

Each sub-command lives in ``batchjobs/commands/<name>.py`` with two functions,
``register(subparsers)`` and ``run(args) -> int``. Errors the user can cause
(:class:`pipelines.errors.BatchJobsError`) end with one line on stderr and a non-zero exit,
never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pipelines.errors import BatchJobsError

# Module names under batchjobs.commands, in the order `--help` lists them.
COMMANDS: tuple[str, ...] = ("generate", "train", "backfill", "sweep", "policy", "audit", "review", "serve", "demo")
COMMANDS += ("complaints", "transparency", "compact", "hashes")


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad command line in one line instead of usage + error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="batchjobs", description="Batch scoring and compliance audit of content backlogs on Ray.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"batchjobs.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command and return its exit code (used in-process by tests)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except BatchJobsError as exc:
        print(f"batchjobs {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"batchjobs {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug or an environment failure: one line here, the traceback in a file
        return _internal_error(args.command, exc)


def _internal_error(command: str, exc: Exception) -> int:
    import tempfile
    import time
    import traceback

    path = os.path.join(
        tempfile.gettempdir(), f"batchjobs-{command}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}.log"
    )
    with open(path, "w") as handle:
        traceback.print_exception(exc, file=handle)
    last = (str(exc).strip().splitlines() or [""])[-1][:300]
    print(
        f"batchjobs {command}: error: unexpected {type(exc).__name__}: {last} (traceback in {path}; "
        "committed work is kept, run the same command again or report it)",
        file=sys.stderr,
    )
    return 1


def entry() -> NoReturn:
    """Console-script entry point.

    Leaves through ``os._exit`` after flushing: pyarrow/deltalake native threads can abort
    a normal interpreter exit (exit code 134, apache/arrow#34314), and a batch job's exit
    code is what schedulers act on.
    """
    try:
        code = main()
    except SystemExit as exc:  # argparse --help / usage errors
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
