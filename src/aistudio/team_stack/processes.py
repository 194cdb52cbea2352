"""Server processes of the team stack: free ports, detached start, bounded waits, stop by pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from aistudio.errors import UserError

HOST = "127.0.0.1"
_LOG_TAIL_LINES = 5


def free_port(host: str = HOST) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = HOST, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_free(port: int, what: str, host: str = HOST) -> None:
    if port_open(port, host):
        holders = ", ".join(f"pid {pid} ({command})" for pid, command in listeners(port)) or "unknown"
        raise UserError(f"{what}: port {host}:{port} is already in use (listening: {holders}); stop it first")


_TCP_LISTEN = "0A"


def _listening_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if len(fields) > 9 and fields[3] == _TCP_LISTEN and int(fields[1].rsplit(":", 1)[1], 16) == port:
                inodes.add(fields[9])
    return inodes


def listeners(port: int) -> list[tuple[int, str]]:
    """(pid, command line) of the processes holding a listening socket on `port` (those we may see)."""
    sockets = {f"socket:[{inode}]" for inode in _listening_inodes(port)}
    found = []
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd) in sockets for fd in fd_dir.iterdir()):
                command = (fd_dir.parent / "cmdline").read_bytes().replace(b"\0", b" ")
                found.append((int(fd_dir.parent.name), command.decode(errors="replace").strip()[:120]))
        except OSError:
            continue
    return sorted(found)


def log_tail(path: Path, lines: int = _LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").strip().splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip() for line in text[-lines:])


def wait_until(ready: Callable[[], bool], timeout_s: float, what: str, log: Path, alive=None) -> None:
    """Poll `ready` until it holds; a timeout or a dead process is a UserError quoting the log."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready():
            return
        if alive is not None and not alive():
            raise UserError(f"{what} exited during start-up; log {log}: {log_tail(log)}")
        time.sleep(0.25)
    raise UserError(f"{what} did not become ready within {timeout_s:.0f} s; log {log}: {log_tail(log)}")


def spawn(command: Sequence[str], log: Path, env: Mapping[str, str], pid_file: Path) -> subprocess.Popen:
    """Start `command` in its own session, so it outlives `make team-up` and is stopped as a group."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=True,
        )
    pid_file.write_text(f"{process.pid}\n")
    return process


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped by its parent) is not a running server.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def stop(pid_file: Path, timeout_s: float = 20.0, sig: int = signal.SIGTERM) -> bool:
    """Signal the process group started by `spawn`; SIGKILL what is left after `timeout_s`.

    Returns once every process of the group is gone, not just its leader: a server's workers
    hold the listening socket, and a restart on the same port must find it free.
    """
    pid = read_pid(pid_file)
    if pid is None or not group_members(pid):
        pid_file.unlink(missing_ok=True)
        return False
    for signal_now, wait_s in ((sig, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, signal_now)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait_s
        while group_members(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if not group_members(pid):
            break
    _reap(pid)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    # When the server is our own child (tests), collect its exit status so it does not linger.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
