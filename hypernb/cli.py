"""``python -m hypernb <command>``: run, notebooks, records, sweep, collect."""
from __future__ import annotations

import argparse
import sys
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from .config import RunConfig
from .errors import MissingPackage

ALIASES = {"optimizer": ["--opt"], "out_dir": ["--out"]}


def _kappa(text: str):
    if "," in text:
        return [float(x) for x in text.split(",") if x.strip()]
    try:
        return float(text)
    except ValueError:
        return text  # a rule name; RunConfig validates it


def _ints(text: str):
    return [int(x) for x in text.split(",") if x.strip()]


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field, documented by the field's help metadata."""
    hints = typing.get_type_hints(RunConfig)
    for f in fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        names = [flag] + ALIASES.get(f.name, [])
        default = f.default if f.default is not MISSING else None
        help_text = (f.metadata.get("help", "") + (f" [default: {default}]" if default is not None else "")).replace("%", "%%")
        hint = hints[f.name]
        if f.name == "kappa":
            parser.add_argument(*names, dest=f.name, type=_kappa, default=argparse.SUPPRESS, help=help_text)
        elif f.name == "seeds":
            parser.add_argument(*names, dest=f.name, type=_ints, default=argparse.SUPPRESS,
                                help=help_text + " (comma-separated, e.g. 0,1,2)")
        elif hint is bool or hint == (bool | None):
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)
        else:
            base = next((t for t in typing.get_args(hint) if t is not type(None)), hint) if typing.get_args(hint) else hint
            parser.add_argument(*names, dest=f.name, type=base if base in (int, float, str) else str,
                                default=argparse.SUPPRESS, help=help_text)


def cmd_run(args) -> int:
    from . import io, run, sweep

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    config = RunConfig.from_dict(values)
    out = Path(config.out_dir) if config.out_dir else None
    if out is not None:  # one writer per folder; a killed write's temporary files are then leftovers
        io.check_out_dir(out, "--out")
        if not sweep.claim(out):
            raise ValueError(f"--out {out} is {sweep.describe_claim(out)}, which is writing a run there; wait for "
                             "it to end (rerunning then resumes or reads the finished run) or choose another --out")
        io.remove_temporaries(out, older_than=None)
    try:
        result = run(config)
    finally:
        if out is not None:
            sweep.release(out)
    print(result)
    for s in result.seeds:
        if s.status != "ok":
            print(f"seed {s.seed}: {s.status} at step {s.diverged_at_step}: {s.reason}")
    if result.out_dir:
        print(f"wrote {result.out_dir}/config.json, metrics.json, env.json")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hypernb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train one configuration (several seeds) and write its results",
                       description="Train with a hyperoptimizer tower; every option below is a RunConfig field.")
    add_config_arguments(p)
    p.set_defaults(func=cmd_run)
    from . import batch

    batch.add_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as e:  # user mistakes, each explained in its message
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder or file that cannot be used (permissions, a file where a folder goes, …)
        what = f"{e.strerror}: {e.filename}" if e.strerror and e.filename else str(e)
        print(f"error: {what}", file=sys.stderr)
        return 2
    except MissingPackage as e:  # an optional package this command needs (its message says what to install)
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
