"""The program the code sandbox runs: isolate itself, drop privileges, run one sample's tests.

Run as a script (`python -I -S sandbox_child.py`, stdin: one JSON job) by `sandbox.run_sample`,
never imported by the project: it must not need anything but the standard library. The order
below is the point — everything that needs privileges or files the sandbox user cannot read
happens first, then privileges go, then the limits that would hamper that setup, then the code:

1. read the job and open the report file (root-only) while still privileged;
2. import the standard-library modules generated code commonly uses: once the uid is dropped the
   interpreter's own library may be unreadable (a pyenv under a 0700 home), so later imports fail;
3. network: a new network namespace (no interface but a down loopback) when the kernel lets us,
   plus, always, an audit hook that refuses to create sockets or call into ctypes;
4. drop to the unprivileged uid (root only: RLIMIT_NPROC does not bind root);
5. rlimits: address space, CPU seconds, file size (also caps stdout/stderr), open files,
   processes = 1 (no fork, no thread), no core dumps;
6. exec the solution, check the entry point, exec the tests; report with the job's nonce, so a
   sample that exits early (sys.exit(0), os._exit) cannot pass by mistake.
"""

import json
import os
import resource
import sys

# Modules imported before privileges are dropped (see 2. above). socket is among them so that
# the audit hook, not a missing module, is what refuses a connection everywhere; subprocess is not.
PRELOADED = (
    "abc array base64 bisect calendar collections collections.abc copy csv dataclasses datetime decimal "
    "enum fractions functools hashlib heapq io itertools json math numbers operator random re socket "
    "statistics string struct textwrap time typing unicodedata"
).split()
CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000
_DENIED_EVENTS = ("socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto")


def _report(handle, nonce, outcome, detail, network):
    handle.write(json.dumps({"nonce": nonce, "outcome": outcome, "detail": detail[:500], "network": network}))
    handle.flush()


def _unshare(flags):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    return libc.unshare(flags) == 0


def _isolate_network(use_namespace):
    mode = "audit-hook"
    if use_namespace:
        if _unshare(CLONE_NEWNET):
            mode = "namespace"
        elif _unshare(CLONE_NEWUSER | CLONE_NEWNET):  # unprivileged user namespaces, where enabled
            mode = "user-namespace"

    def deny(event, args):
        if event in _DENIED_EVENTS or event.startswith("ctypes."):
            raise PermissionError(f"{event}: not allowed in the evaluation sandbox")

    sys.addaudithook(deny)  # cannot be removed again, by design
    return mode


def _drop_privileges(uid, gid):
    if os.geteuid() != 0:
        return
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def _limit(kind, value):
    resource.setrlimit(kind, (value, value))


def _apply_limits(job):
    _limit(resource.RLIMIT_CORE, 0)
    _limit(resource.RLIMIT_NOFILE, 64)
    _limit(resource.RLIMIT_FSIZE, job["max_output_bytes"])
    # The soft CPU limit sends SIGXCPU (which kills); the hard one a second later is SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_seconds"], job["cpu_seconds"] + 1))
    _limit(resource.RLIMIT_AS, job["memory_bytes"])
    _limit(resource.RLIMIT_NPROC, 1)


def main():
    job = json.loads(sys.stdin.read())
    report = open(job["report_path"], "w", encoding="utf-8")  # noqa: SIM115 - must outlive the privilege drop
    nonce = job["nonce"]
    for name in PRELOADED:
        __import__(name)
    network = _isolate_network(job["network_namespace"])
    _drop_privileges(job["uid"], job["gid"])
    _apply_limits(job)
    namespace = {"__name__": "solution", "__builtins__": __builtins__}
    stage = "solution"
    try:
        exec(compile(job["code"], "solution.py", "exec"), namespace)  # noqa: S102 - this is the sandbox
        if not callable(namespace.get(job["entry_point"])):
            _report(report, nonce, "no_entry_point", f"{job['entry_point']} is not defined", network)
            return 1
        stage = "tests"
        exec(compile(job["tests"], "tests.py", "exec"), namespace)  # noqa: S102
    except AssertionError as exc:
        _report(report, nonce, "failed", f"AssertionError: {exc}", network)
        return 1
    except BaseException as exc:  # noqa: BLE001 - SystemExit and MemoryError are outcomes too
        _report(report, nonce, "error", f"{stage}: {type(exc).__name__}: {exc}", network)
        return 1
    _report(report, nonce, "passed", "", network)
    return 0


if __name__ == "__main__":
    sys.exit(main())
