"""``python -m hypernb <command>``: run, notebooks, records, sweep, collect."""
from __future__ import annotations

import argparse
import os
import re
import sys
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from .config import RunConfig
from .errors import MissingPackage, NotebookFailed

ALIASES = {"optimizer": ["--opt"], "out_dir": ["--out"], "alpha": ["--lr"], "mu": ["--momentum"]}


def _kappa(text: str):
    if "," in text:
        try:
            return [float(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"a list of κ is comma-separated numbers, one per hyper level (such as "
                                             f"1e-3,1e-4), got {text!r}") from None
    try:
        return float(text)
    except ValueError:
        return text  # a rule name; RunConfig validates it


def _ints(text: str):
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are comma-separated integers >= 0 (0,1,2 trains three seeds; 3 "
                                         f"trains seed 3), got {text!r}") from None


# a value that starts like a negative number (-1e-5, -.5, -1e-3,2): argparse takes -1e-5 for an option
_NEGATIVE = re.compile(r"^-\.?\d")


def _plain_number(text: str) -> str:
    """-1e-3 as -0.001 (the same float, in a form argparse reads as a negative number)."""
    from decimal import Decimal, InvalidOperation

    try:
        plain = format(Decimal(text), "f")
    except InvalidOperation:
        return text
    return plain if "." in plain or not re.search(r"[eE.]", text) else plain + ".0"


def join_negative_values(argv: list[str]) -> list[str]:
    """``--kappa -1e-5`` as ``--kappa=-1e-5``: argparse reads only -5 and -0.5 as negative numbers, and
    takes -1e-5 for an unknown option (the value of ``-p NAME -1e-3`` is written -0.001 instead)."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + list(argv[i:])
        prev = out[-1] if out else ""
        if _NEGATIVE.match(arg) and prev.startswith("--") and "=" not in prev and len(prev) > 2:
            out[-1] = f"{prev}={arg}"
            continue
        if _NEGATIVE.match(arg) and len(out) >= 2 and out[-2] in ("-p", "--param"):
            arg = _plain_number(arg)
        out.append(arg)
    return out


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per RunConfig field, documented by the field's help metadata."""
    hints = typing.get_type_hints(RunConfig)
    for f in fields(RunConfig):
        flag = "--" + f.name.replace("_", "-")
        names = [flag] + ALIASES.get(f.name, [])
        default = f.default if f.default is not MISSING else None
        if isinstance(default, (tuple, list)):
            default = ",".join(map(str, default))  # as it is typed: --seeds 0
        help_text = (f.metadata.get("help", "") + (f" [default: {default}]" if default is not None
                                                                      else "")).replace("%", "%%")
        hint = hints[f.name]
        if f.name == "kappa":
            parser.add_argument(*names, dest=f.name, type=_kappa, default=argparse.SUPPRESS, help=help_text)
        elif f.name == "seeds":
            parser.add_argument(*names, dest=f.name, type=_ints, default=argparse.SUPPRESS,
                                help=help_text + " (comma-separated: 0,1,2 trains three seeds, 3 trains seed 3)")
        elif hint is bool or hint == (bool | None):
            parser.add_argument(*names, dest=f.name, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS,
                                help=help_text)
        else:
            base = next((t for t in typing.get_args(hint) if t is not type(None)), hint) if typing.get_args(hint) else hint
            parser.add_argument(*names, dest=f.name, type=base if base in (int, float, str) else str,
                                default=argparse.SUPPRESS, help=help_text)


def _stamp(path: Path):
    """What tells whether a file was rewritten (an atomic write is a new file)."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def _one_name_each(argv: list[str]) -> None:
    """Two names of one option (--lr and --alpha) given together: refused, instead of the last one winning."""
    for name, aliases in ALIASES.items():
        given = sorted({flag for flag in ["--" + name.replace("_", "-"), *aliases]
                        for arg in argv if arg == flag or arg.startswith(flag + "=")})
        if len(given) > 1:
            raise ValueError(f"{' and '.join(given)} are the same option; give one")


def cmd_run(args) -> int:
    from . import io, run, sweep
    from .data import DataError

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    config = RunConfig.from_dict(values)
    out = Path(config.out_dir) if config.out_dir else None
    if out is not None:
        io.check_out_dir(out, "--out")
    before = _stamp(out / "metrics.json") if out is not None else None
    try:
        with sweep.stopped_by_sigterm():  # (a kill ends it as Ctrl-C does: the folder's claim is released)
            result = run(config)  # (which holds the folder's claim while it trains: one writer per folder)
    except DataError as e:  # its message speaks to the Python API
        raise DataError(str(e).replace("pass data_root=...", "pass --data-root DIR")) from None
    except ValueError as e:
        if str(e).startswith("out_dir "):  # another process is writing there
            raise ValueError("--out " + str(e)[len("out_dir "):].replace("another out_dir", "another --out")) from None
        raise
    print(result)
    for s in result.seeds:
        if s.status != "ok":
            print(f"seed {s.seed}: {s.status} at step {s.diverged_at_step}: {s.reason}")
        elif s.warning:
            print(f"seed {s.seed}: warning: {s.warning}")
    if result.out_dir:
        if before is not None and _stamp(out / "metrics.json") == before:
            print(f"read back {result.out_dir}/metrics.json: this run had finished there; nothing was trained or "
                  "rewritten")
        else:
            print(f"wrote {result.out_dir}/config.json, metrics.json, env.json")
    if not any(s.status == "ok" for s in result.seeds):  # recorded, but a batch job should see it failed
        print("every seed diverged (exit status 4)", file=sys.stderr)
        return 4
    return 0


PROFILE_CHOICES = ("auto", "smoke", "demo", "full")


def check_notebook_selection(args) -> None:
    """`notebooks` and `records`: their --profile, --only and --out, checked before anything runs or prints."""
    from . import io

    if args.profile not in PROFILE_CHOICES:
        raise ValueError(f"--profile must be one of {', '.join(PROFILE_CHOICES)}, got {args.profile!r}")
    if args.only and not [w for w in args.only.split(",") if w.strip()]:
        raise ValueError(f"--only {args.only!r} names no notebook: give comma-separated notebook prefixes such as "
                         "01,04, or leave --only out for every notebook")
    if args.out:
        io.check_out_dir(Path(args.out), "--out", create=False)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m hypernb", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="train one configuration (several seeds) and write its results", allow_abbrev=False,
                       description="Train with a hyperoptimizer tower; every option below is a RunConfig field.")
    add_config_arguments(p)
    p.set_defaults(func=cmd_run)
    from . import batch

    batch.add_commands(sub)
    # only the public commands in the usage line (those without help, such as a sweep worker's `points`,
    # are not listed below either)
    from .sweep import HIDDEN_COMMANDS

    sub.metavar = "{" + ",".join(name for name in sub.choices if name not in HIDDEN_COMMANDS) + "}"
    parser.commands = list(sub.choices)  # every command, hidden ones included (see main)
    return parser


def _reader_gone() -> bool:
    """Whether stdout is a pipe whose reader has closed it (poll reports an error on its write end)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no poll (Windows), or no real file behind stdout
        return False


def main(argv=None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    from .sweep import HIDDEN_COMMANDS

    public = [name for name in parser.commands if name not in HIDDEN_COMMANDS]
    if argv and not argv[0].startswith("-") and argv[0] not in parser.commands:  # argparse would list hidden ones
        parser.error(f"unknown command {argv[0]!r}; choose from {', '.join(public)}")
    args = parser.parse_args(join_negative_values(argv))
    try:
        if args.command == "run":
            _one_name_each(argv)
        if args.command in ("notebooks", "records"):
            check_notebook_selection(args)
        return args.func(args)
    except BrokenPipeError as e:
        if _reader_gone():  # the reader of our output stopped reading (`… --dry-run | head`): nothing to say,
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (nor at exit)
            return 141  # and the shells' status for it (128 + SIGPIPE): a command cut short did not succeed
        print(f"error: {e}", file=sys.stderr)
        return 2
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
    except NotebookFailed as e:  # a notebook's cell raised: its message, and where the executed copy is
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
