"""Files a run leaves behind, written atomically: config.json, env.json, metrics.json, checkpoints."""
from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import torch

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, obj) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=1, default=_json_default) + "\n").encode())


def read_json(path: Path, what: str = "a JSON file"):
    """Read ``path``; a file that is not valid JSON is named with the way out (nothing is overwritten)."""
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} should hold {what} but is not valid JSON ({e.msg} at line {e.lineno}, "
                         f"column {e.colno}); it was probably cut short. Delete it (the run will be redone or "
                         "resumed from its checkpoint), or restore it from a backup") from None


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


def load_checkpoint(path: Path, device) -> dict:
    return torch.load(path, map_location=device, weights_only=False)


def git_commit() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        if out.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


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
