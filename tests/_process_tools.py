"""What the kill, equivalence and bind tests share: killing a run's process tree at a chosen
moment, tables in a form that compares across runs and runners, and the sockets a process tree
listens on (as the OS reports them)."""

from __future__ import annotations

import ipaddress
import json
import signal
import socket
import subprocess
import time

import psutil


def kill_tree(pid: int) -> None:
    """SIGKILL a process and every process it started (spawned workers, Ray's gcs/raylet included)."""
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    for proc in procs:
        try:
            proc.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass


def kill_when_parts(cmd: list[str], env: dict, run_dir, table: str, parts: int, timeout_s: float = 240) -> set[str]:
    """Start `cmd` (a `vstw run`), SIGKILL its whole tree once `table` has `parts` parts in
    `run_dir`; returns the parts there at the kill."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(run_dir.existing_parts(table)) < parts:
            assert proc.poll() is None, "the run finished before it could be killed"
            time.sleep(0.05)
    finally:
        kill_tree(proc.pid)
        proc.wait()
    return run_dir.existing_parts(table)


def canonical(run_dir, table: str) -> list[str]:
    """A table as sorted JSON lines, without the `run` column: comparable across runs/runners."""
    rows = run_dir.read_rows(table)
    for row in rows:
        row.pop("run", None)
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


def listening_sockets(pid: int) -> list[dict]:
    """Every socket that waits for others, of `pid` and every process it started, as the OS sees
    it: TCP sockets in LISTEN and UDP sockets with no peer (bound, receiving from anyone).
    Each as {"name", "pid", "proto", "ip", "port"}; processes that exit meanwhile are skipped."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
    found = []
    for proc in procs:
        try:
            name, conns = proc.name(), proc.net_connections(kind="inet")
        except (psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
        for c in conns:
            tcp = c.type == socket.SOCK_STREAM
            if (tcp and c.status == psutil.CONN_LISTEN) or (not tcp and not c.raddr):
                found.append({"name": name, "pid": proc.pid, "proto": "tcp" if tcp else "udp", "ip": c.laddr.ip, "port": c.laddr.port})
    return found


def is_loopback(ip: str) -> bool:
    """127.0.0.0/8, ::1, or an IPv4-mapped loopback address (::ffff:127.0.0.1)."""
    addr = ipaddress.ip_address(ip.split("%", 1)[0])
    mapped = getattr(addr, "ipv4_mapped", None)
    return addr.is_loopback or (mapped is not None and mapped.is_loopback)


def beyond_loopback(listeners: list[dict]) -> list[dict]:
    """The listeners of `listening_sockets` that others on the network could reach."""
    return [entry for entry in listeners if not is_loopback(entry["ip"])]
