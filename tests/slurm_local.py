"""A real single-node Slurm cluster in a temporary folder, for the sweep tests.

munged, MariaDB + slurmdbd (so that ``sacct`` works: without accounting submitit cannot tell that a
task died), slurmctld and slurmd run as our own processes with their configs under ``root`` (a short
path: unix sockets must stay under 108 characters) and are stopped by PID. Needs Debian's
slurmctld slurmd slurm-client munge slurmdbd mariadb-server (``.ci/run`` installs them).
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

BINARIES = ("munged", "mungekey", "mariadbd", "mariadb-install-db", "mariadb", "slurmdbd", "slurmctld", "slurmd",
            "sinfo", "sbatch", "sacct", "scancel", "squeue")
PACKAGES = "slurmctld slurmd slurm-client munge slurmdbd mariadb-server"


def missing_binaries() -> list[str]:
    paths = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    return [b for b in BINARIES if shutil.which(b, path=paths) is None]


def _free_port_base() -> int:
    for base in range(17800, 30000, 10):
        if all(_port_free(base + i) for i in range(4)):
            return base
    raise RuntimeError("no free ports for a local Slurm cluster")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


# How long a job credential lives. Slurm also holds a requeued job this long before it may start
# again (so that the old run's credential has expired): 120 s by default, too long for a test.
CRED_EXPIRE_S = 15


class LocalSlurm:
    def __init__(self, cpus: int | None = None):
        self.root = Path(tempfile.mkdtemp(prefix="hnb-slurm-", dir="/tmp"))
        self.host = socket.gethostname().split(".")[0]
        self.port = _free_port_base()
        self.cpus = cpus or os.cpu_count() or 2
        self.env = {**os.environ, "SLURM_CONF": str(self.root / "etc" / "slurm.conf"),
                    "PATH": os.environ.get("PATH", "") + ":/usr/sbin:/sbin"}
        self.pids: dict[str, Path] = {}

    # -- helpers --------------------------------------------------------------------------------
    def _run(self, *cmd, check=True, timeout=120, **kw):
        return subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout,
                              check=check, **kw)

    def _wait(self, what, predicate, timeout=60.0):
        end = time.time() + timeout
        while time.time() < end:
            if predicate():
                return
            time.sleep(0.2)
        logs = "\n".join(f"--- {p.name}\n{p.read_text()[-2000:]}" for p in (self.root / "log").glob("*.log"))
        raise RuntimeError(f"local Slurm: {what} did not come up within {timeout:.0f} s\n{logs}")

    def job(self, job_id: str) -> tuple[str, str]:
        """(state, reason) of a job as squeue shows it; ("", "") once it has left the queue, ("?", error)
        when squeue did not answer."""
        res = self._run("squeue", "-h", "-j", job_id, "-o", "%T|%r", check=False)
        if res.returncode != 0:
            return "?", res.stderr.strip()
        state, _, reason = res.stdout.strip().partition("|")
        return state, reason

    def diagnose(self, job_id: str, *folders: Path) -> str:
        """What a failing test prints: the job as the controller sees it, drained nodes, the daemons'
        log tails and the job's own logs under ``folders``."""
        parts = [self._run("scontrol", "show", "job", job_id, check=False).stdout,
                 self._run("sinfo", "-R", check=False).stdout]
        logs = list((self.root / "log").glob("*.log"))
        for folder in folders:
            logs += sorted(Path(folder).rglob("*_log.*"))
        parts += [f"--- {p}\n{p.read_text(errors='replace')[-3000:]}" for p in logs]
        return "\n".join(parts)

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> "LocalSlurm":
        r = self.root
        for d in ("etc", "run", "log", "state", f"spool/{self.host}", "munge", "db"):
            (r / d).mkdir(parents=True, exist_ok=True)
        os.chmod(r / "munge", 0o700)
        os.chmod(r / "run", 0o755)
        try:
            self._start_munge()
            self._start_mariadb()
            self._write_configs()
            self._start_slurm()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_munge(self):
        r = self.root
        key = r / "munge" / "munge.key"
        self._run("mungekey", "--create", f"--keyfile={key}", "--bits=1024")
        os.chmod(key, 0o400)
        self._run("munged", "--force", f"--socket={r}/run/munge.sock", f"--key-file={key}",
                  f"--pid-file={r}/run/munged.pid", f"--log-file={r}/log/munged.log", f"--seed-file={r}/munge/seed")
        self.pids["munged"] = r / "run" / "munged.pid"
        self._wait("munged", lambda: (r / "run" / "munge.sock").exists())

    def _start_mariadb(self):
        r = self.root
        self._run("mariadb-install-db", "--no-defaults", "--user=root", f"--datadir={r}/db",
                  "--auth-root-authentication-method=socket", "--skip-test-db", timeout=180)
        subprocess.Popen(["mariadbd", "--no-defaults", "--user=root", f"--datadir={r}/db",
                          f"--socket={r}/run/mysqld.sock", f"--port={self.port + 3}", "--bind-address=127.0.0.1",
                          f"--pid-file={r}/run/mysqld.pid", f"--log-error={r}/log/mariadbd.log",
                          "--innodb-use-native-aio=0", "--innodb-buffer-pool-size=64M", "--skip-log-bin"],
                         env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
        self.pids["mariadbd"] = r / "run" / "mysqld.pid"

        def ready():
            return self._run("mariadb", "--no-defaults", "-S", f"{r}/run/mysqld.sock", "-uroot", "-e", "SELECT 1",
                             check=False).returncode == 0
        self._wait("MariaDB", ready, 90)
        self._run("mariadb", "--no-defaults", "-S", f"{r}/run/mysqld.sock", "-uroot", "-e",
                  "CREATE DATABASE slurm_acct_db; CREATE USER 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw'; "
                  "GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';")

    def _write_configs(self):
        r, h, p = self.root, self.host, self.port
        (r / "etc" / "slurm.conf").write_text(f"""ClusterName=hypernbtest
SlurmctldHost={h}(127.0.0.1)
SlurmctldPort={p}
SlurmdPort={p + 1}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={r}/run/munge.sock,cred_expire={CRED_EXPIRE_S}
StateSaveLocation={r}/state
SlurmdSpoolDir={r}/spool/%n
SlurmctldPidFile={r}/run/slurmctld.pid
SlurmdPidFile={r}/run/slurmd.pid
SlurmctldLogFile={r}/log/slurmctld.log
SlurmdLogFile={r}/log/slurmd.log
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort={p + 2}
AccountingStoragePass={r}/run/munge.sock
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=1,bf_interval=1
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
NodeName={h} NodeAddr=127.0.0.1 CPUs={self.cpus} RealMemory=4000 State=UNKNOWN
PartitionName=debug Nodes={h} Default=YES MaxTime=INFINITE State=UP
""")
        dbd = r / "etc" / "slurmdbd.conf"
        dbd.write_text(f"""AuthType=auth/munge
AuthInfo=socket={r}/run/munge.sock
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={p + 2}
SlurmUser=root
LogFile={r}/log/slurmdbd.log
PidFile={r}/run/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={p + 3}
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
""")
        os.chmod(dbd, 0o600)

    def _start_slurm(self):
        r = self.root
        self._run("slurmdbd")  # reads slurmdbd.conf next to $SLURM_CONF
        self.pids["slurmdbd"] = r / "run" / "slurmdbd.pid"
        self._wait("slurmdbd", lambda: not _port_free(self.port + 2), 60)
        self._run("slurmctld")
        self.pids["slurmctld"] = r / "run" / "slurmctld.pid"
        self._run("slurmd")
        self.pids["slurmd"] = r / "run" / "slurmd.pid"

        def idle():
            out = self._run("sinfo", "-h", "-o", "%T", check=False)
            return out.returncode == 0 and out.stdout.strip() in ("idle", "mixed", "allocated")
        self._wait("slurmd registration (sinfo idle)", idle, 90)

    def stop(self) -> None:
        if (self.root / "etc" / "slurm.conf").exists() and "slurmctld" in self.pids:
            self._run("scancel", "--full", "-u", os.environ.get("USER", "root"), check=False, timeout=30)
        for name in ("slurmd", "slurmctld", "slurmdbd", "mariadbd", "munged"):
            pidfile = self.pids.get(name)
            if pidfile is None or not pidfile.exists():
                continue
            try:
                pid = int(pidfile.read_text().strip())
            except ValueError:
                continue
            _terminate(pid)
        shutil.rmtree(self.root, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\nState:\tZ" not in f.read()  # a zombie is dead (its parent reaps it later)
    except OSError:
        return False


def _terminate(pid: int, grace: float = 20.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    end = time.time() + grace
    while time.time() < end and _alive(pid):
        time.sleep(0.1)
    if _alive(pid):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
