"""Files a run leaves behind, written atomically: config.json, env.json, metrics.json, checkpoints."""
from __future__ import annotations

import errno
import json
import math
import os
import pickle
import platform
import re
import socket
import subprocess
import tempfile
import time
import zipfile
from pathlib import Path

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


REPO = Path(__file__).resolve().parents[1]  # this checkout (the folder holding hypernb/)


def shown(path) -> str:
    """A path as records and messages keep it: relative to this checkout when inside it, so that
    committed run records and notebook outputs name no machine's folders; else as given."""
    try:
        return str(Path(path).resolve().relative_to(REPO))
    except ValueError:
        return str(path)


TMP_SUFFIX = ".tmp"  # atomic_write_bytes's temporary files: .<name>.<8 random characters>.tmp
_TMP_NAME = re.compile(r"^\.(?P<name>.+)\.[A-Za-z0-9_]{8}(\.tmp)?$")
TMP_STALE_S = 900.0  # a temporary file this old is a killed write's leftover, whoever wrote it


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    atomic_write_with(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_write_with(path: Path, write) -> None:
    """``write(temporary_path)`` (any writer that takes a file name, such as ``DataFrame.to_parquet``),
    fsync, then rename over ``path``: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file ordinary permissions
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_temporaries(folder: Path, older_than: float | None = TMP_STALE_S, recursive: bool = True) -> list[Path]:
    """Remove what killed writes left behind in ``folder``: atomic_write_bytes's temporary files
    (``.<name>.<random>.tmp``). ``older_than`` (seconds): only those not touched for that long, since
    a live writer elsewhere may be about to rename its own; ``None``: all of them (for a caller
    that holds the folder's claim, so nobody else writes there). Returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed, now = [], time.time()
    for path in (folder.rglob(".*") if recursive else folder.glob(".*")):
        m = _TMP_NAME.match(path.name)
        if not m or not path.is_file() or path.is_symlink():
            continue
        try:
            if older_than is None or now - path.stat().st_mtime > older_than:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:  # its writer renamed it meanwhile
            continue
    return removed


def read_yaml(path: Path, what: str = "a YAML file"):
    """Read ``path`` with PyYAML; invalid YAML is a ValueError naming the file, line and column."""
    import yaml

    try:
        with open(path) as f:
            return yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(x) for x in (getattr(e, "context", None), getattr(e, "problem", None)) if x) or str(e)
        raise ValueError(f"{path}{where}: not valid YAML ({what}): {problem}") from None
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} should hold {what} but is not text ({e.reason} at byte {e.start})") from None


def check_out_dir(path: Path, what: str, create: bool = True) -> None:
    """A folder results can be written to: an existing file, or a folder that cannot be created or
    written, is a clear error (before anything runs). ``create=False`` only checks (nothing is made:
    for a command that checks other mistakes before it writes anything)."""
    path = Path(path)
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise ValueError(f"{what} {path} cannot be a folder: {probe} is a file; choose another path")
    if not create:
        if not os.access(probe, os.W_OK | os.X_OK):
            raise ValueError(f"{what} {path} " + ("is not writable" if probe == path else
                                                  f"cannot be created ({probe} is not writable)")
                             + "; choose another path or fix its permissions")
        return
    if not path.exists():
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"{what} {path} cannot be created: {e.strerror} ({probe} is not writable); "
                             "choose another path") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ValueError(f"{what} {path} is not writable; choose another path or fix its permissions")


def write_json(path: Path, obj) -> None:
    """Write ``obj`` as strict JSON (RFC 8259), atomically. A number that is not finite (a diverged run's NaN
    loss, an infinite one) is written as ``null``: Python's own ``NaN``/``Infinity`` are not JSON, and a
    browser's ``JSON.parse``, ``jq`` or R would refuse the whole file. A run's record turns them back into
    NaN when it is read (:func:`hypernb.train.read_seeds`; an infinity too, so its sign is not kept); any
    other reader gets None where the writer had a non-finite number."""
    text = json.dumps(_strict(obj), indent=1, allow_nan=False, default=_json_default)
    atomic_write_bytes(path, (text + "\n").encode())


def _strict(o):
    """``o`` with every non-finite float replaced by None (tensors and tuples as lists, as JSON writes them)."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _strict(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_strict(v) for v in o]
    if isinstance(o, torch.Tensor):
        return _strict(o.tolist())
    return o


class DamagedFileError(ValueError):
    """A file this project wrote that cannot be read back as what it should hold (cut short, or
    edited into another shape). It carries the ``path``, so that a caller that can redo the work
    (a sweep) sets the file aside and runs again instead of stopping."""

    def __init__(self, path, message: str):
        super().__init__(message)
        self.path = Path(path)


_REDO = "Delete it (the run will be redone or resumed from its checkpoint), or restore it from a backup"


def read_json(path: Path, what: str = "a JSON file"):
    """Read ``path``; a file that is not valid JSON is named with the way out (nothing is overwritten)."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DamagedFileError(path, f"{path} should hold {what} but is not valid JSON ({e.msg} at line {e.lineno}, "
                                     f"column {e.colno}); it was probably cut short. {_REDO}") from None
    except UnicodeDecodeError as e:
        raise DamagedFileError(path, f"{path} should hold {what} but is not text ({e.reason} at byte {e.start}); "
                                     f"it is damaged. {_REDO}") from None


def wrong_json(path: Path, what: str, why: str, fix: str | None = None) -> DamagedFileError:
    """The error for a file that is valid JSON of the wrong shape (``[1, 2]`` where a mapping belongs, a
    mapping without its keys): the file, what it should hold, what is wrong and the way out."""
    return DamagedFileError(path, f"{path} should hold {what} but is valid JSON of another kind: {why}. "
                                  f"{fix or _REDO}")


def set_aside(path: Path) -> Path:
    """Rename a damaged file to ``<name>.damaged`` (``.damaged-2``, … if taken), so that the work can be
    redone without losing what the file held; returns the new path."""
    path = Path(path)
    for n in range(1, 1000):
        aside = path.with_name(path.name + (".damaged" if n == 1 else f".damaged-{n}"))
        if not aside.exists():
            path.rename(aside)
            return aside
    raise OSError(f"{path}: too many damaged copies beside it; remove the old *.damaged files")


def shape(value) -> str:
    """A short description of a JSON value, for :func:`wrong_json`."""
    if isinstance(value, dict):
        return ("a mapping with keys " + ", ".join(map(str, list(value)[:6])) + (", …" if len(value) > 6 else "")
                if value else "an empty mapping")
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)" if value else "an empty list"
    return f"{type(value).__name__ if value is not None else 'null'} {json.dumps(value)[:40]}"


def _json_default(o):
    if isinstance(o, (set, tuple)):
        return list(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def save_checkpoint(path: Path, state: dict) -> None:
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, device, keys: tuple = ()) -> dict:
    """A training checkpoint written by :func:`save_checkpoint`, a mapping that holds ``keys``; one that
    cannot be read (cut short, overwritten) is a :class:`DamagedFileError` naming it and the way out, not
    torch's traceback."""
    fix = ("Delete it to train its runs again from their first epoch (their finished seeds are kept), or "
           "restore it from a backup")
    corrupt = _failed_crc(path)
    if corrupt is not None:
        raise DamagedFileError(path, f"{path} should hold a training checkpoint but its part {corrupt!r} fails its "
                                     f"checksum: the file is incomplete or corrupted. {fix}")
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except (EOFError, pickle.UnpicklingError, RuntimeError, OSError) as e:
        # only what a cut-short or overwritten file gives: torch's zip reader (a RuntimeError, or EINVAL when
        # its directory would lie before the file's start), or pickle reading the bytes; anything else (out of
        # memory, a module missing while unpickling, a file that cannot be opened) is not the file's fault
        if isinstance(e, RuntimeError) and (isinstance(e, torch.OutOfMemoryError)
                                            or "PytorchStreamReader" not in str(e)):
            raise
        if isinstance(e, OSError) and e.errno != errno.EINVAL:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DamagedFileError(path, f"{path} should hold a training checkpoint but cannot be read ({first}); "
                                     f"it was probably cut short. {fix}") from None
    missing = [k for k in keys if k not in state] if isinstance(state, dict) else ["a mapping"]
    if missing:
        raise DamagedFileError(path, f"{path} should hold a training checkpoint but lacks {missing}. {fix}")
    return state


def _failed_crc(path: Path) -> str | None:
    """The first part of a checkpoint's zip whose stored CRC-32 does not match its bytes, or None. torch.load
    does not check them: a flipped byte in a tensor loaded silently and a run resumed from wrong numbers. A
    part stored with CRC 0 is not checked (torch writes 0 when its compute_crc32 setting is off), nor is a file
    that is not a zip at all (torch.load says what is wrong with it). Reads the file once more."""
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                if info.CRC == 0:
                    continue
                try:
                    with archive.open(info) as part:
                        while part.read(1 << 22):
                            pass
                except zipfile.BadZipFile:  # "Bad CRC-32 for file …"
                    return info.filename
    except (zipfile.BadZipFile, OSError, EOFError):
        return None
    return None


def git_commit() -> str | None:
    """This checkout's commit (``-dirty`` with uncommitted changes); where the code runs from a copy
    without git (a tree sent to a batch machine), the commit named by ``$HYPERNB_GIT_COMMIT``."""
    here = Path(__file__).resolve().parent
    given = os.environ.get("HYPERNB_GIT_COMMIT") or None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return given
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return given


def environment(device: torch.device) -> dict:
    """Versions, machine and device: enough to say where a number came from."""
    from importlib.metadata import PackageNotFoundError, version

    def v(pkg):
        try:
            return version(pkg)
        except PackageNotFoundError:
            return None

    env = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "hypernb": v("hypernb"),
        "torch": torch.__version__,
        "torchvision": v("torchvision"),
        "numpy": v("numpy"),
        "git_commit": git_commit(),
        "device": str(device),
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        env.update(gpu=torch.cuda.get_device_name(device), cuda=torch.version.cuda,
                   cudnn=torch.backends.cudnn.version())
    else:
        try:
            with open("/proc/cpuinfo") as f:
                env["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            env["cpu"] = platform.processor()
    return env
