"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a temporary directory, a free port, its unix
socket in that directory (no TCP), trust authentication, torn down with the directory.

initdb refuses to run as root: as root the cluster belongs to an unprivileged user (`herald-pg`, created with
useradd when missing) and initdb/pg_ctl run through runuser. The binaries are found on PATH or in Debian's
/usr/lib/postgresql/<version>/bin; `find_bin()` is None when PostgreSQL is not installed.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

USER = "herald-pg"


def find_bin() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Cluster:
    """A running throwaway cluster; `url(db)` names a database in it, `create_database()` makes a fresh one."""

    def __init__(self, bindir: Path, durable: bool = False):
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="herald-pg-"))
        self.port = _free_port()
        self.as_root = os.geteuid() == 0
        self._n = 0
        if self.as_root:
            if subprocess.run(["id", "-u", USER], capture_output=True).returncode != 0:
                subprocess.run(["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", USER],
                               check=True, capture_output=True)
            shutil.chown(self.root, USER, USER)
        os.chmod(self.root, 0o755)
        self._run("initdb", "-D", str(self.root / "data"), "-U", "herald", "--auth=trust", "-E", "UTF8",
                  "--locale=C.UTF-8")
        fast = "" if durable else "-c fsync=off -c full_page_writes=off "  # tests need no crash safety
        self._opts = f"-p {self.port} -k {self.root} -c listen_addresses='' {fast}-c max_connections=200"
        self.start_server()

    def start_server(self) -> None:
        """Starts the server (again, after stop_server), on the same port and socket directory."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-o", self._opts, "-l", str(self.root / "log"), "-w",
                  "start")

    def stop_server(self) -> None:
        """Stops the server as a crash would (immediate: clients cut off); the data stays for start_server()."""
        self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")

    def _run(self, tool: str, *args: str) -> None:
        cmd = [str(self.bindir / tool), *args]
        if self.as_root:
            cmd = ["runuser", "-u", USER, "--", *cmd]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=self.root)
        if r.returncode != 0:
            raise RuntimeError(f"{tool} failed ({r.returncode}): {r.stderr.strip() or r.stdout.strip()}")

    def cpu_seconds(self) -> float:
        """CPU seconds used so far by the server's processes (the postmaster and its children; a benchmark's share
        of a run is the difference between two readings)."""
        total, tick = 0.0, os.sysconf("SC_CLK_TCK")
        pid = int((self.root / "data" / "postmaster.pid").read_text().split()[0])
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(proc.name) == pid or int(fields[1]) == pid:  # fields[1]: the parent's pid
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://herald@/{db}?host={self.root}&port={self.port}"

    def create_database(self, prefix: str = "t") -> str:
        """A fresh empty database; returns its URL."""
        import psycopg

        self._n += 1
        name = f"{prefix}_{os.getpid()}_{self._n}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


def start(durable: bool = False) -> Cluster | None:
    """A new cluster, or None when PostgreSQL is not installed; `durable` keeps fsync on (benchmarks)."""
    bindir = find_bin()
    return None if bindir is None else Cluster(bindir, durable)
