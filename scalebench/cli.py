"""The `scalebench` command: a thin shell over the library.

Each command group lives beside the code it drives, in a module with ``register(subparsers)``; this file
only assembles them, maps errors to exit codes (0 ok, 2 bad input, 1 failure) and configures logging.
Command modules import heavy libraries (torch, pandas) inside their handlers so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from scalebench.errors import ConfigError, FitError, ScalebenchError

# Modules that contribute subcommands; a module that is absent (a partial install) is skipped.
COMMAND_MODULES = (
    "scalebench.sweep.cli",  # run, validate, status, export, env
    "scalebench.profiling.cli",  # profile
    "scalebench.train.check_cli",  # check (coordinate check of parametrisations)
    "scalebench.laws.cli",  # fit
    "scalebench.advisor.cli",  # next
    "scalebench.planning.cli",  # estimate, plan
    "scalebench.report.cli",  # report
)

# Which module registers a command: a command line that names one builds only that module's parser, so
# `status` or `export` does not import every other command's dependencies (~0.3 s on two cores). A command
# missing here still works (the whole parser is built); tests check the map against the registrations.
COMMAND_OWNERS = {
    **dict.fromkeys(("run", "validate", "status", "export", "env", "quickstart"), "scalebench.sweep.cli"),
    "profile": "scalebench.profiling.cli",
    "check": "scalebench.train.check_cli",
    "fit": "scalebench.laws.cli",
    "next": "scalebench.advisor.cli",
    **dict.fromkeys(("estimate", "plan"), "scalebench.planning.cli"),
    "report": "scalebench.report.cli",
}

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT = 0, 1, 2
EXIT_INTERRUPTED, EXIT_PIPE_CLOSED = 130, 141  # 128 + SIGINT, 128 + SIGPIPE, as shells report them


def _modules_for(argv: list[str] | None) -> tuple[str, ...]:
    """The command modules to load: the named command's owner, or all of them (no command, or an unknown one)."""
    command = next((a for a in (argv or ()) if not a.startswith("-")), None)
    owner = COMMAND_OWNERS.get(command)
    return (owner,) if owner in COMMAND_MODULES else COMMAND_MODULES


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The command-line parser; given the command line, only the module of the command it names is loaded."""
    from scalebench import __version__

    parser = argparse.ArgumentParser(
        prog="scalebench",
        description="Scaling-law benchmarking and resource planning: sweep, profile, fit, report, estimate.",
    )
    parser.add_argument("--version", action="version", version=f"scalebench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _modules_for(argv):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


class _ArgumentError(Exception):
    pass


def main(argv: list[str] | None = None) -> int:
    try:
        code = _main(argv)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
    except BrokenPipeError:  # `scalebench status DIR | head`: the reader left; not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not raise again
        return EXIT_PIPE_CLOSED
    return code


def _main(argv: list[str] | None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(argv)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad input, 0 on --help
        return int(exc.code or 0)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.captureWarnings(True)
    try:
        return int(args.func(args) or EXIT_OK)
    except (ConfigError, FitError) as exc:
        print(f"scalebench {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ScalebenchError as exc:
        print(f"scalebench {args.command}: failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print(f"scalebench {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
