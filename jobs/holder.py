"""Who holds a lease, and whether that holder is still alive.

A holder is ``host:pid:starttime``: the host name, the process id and the
process's start time in clock ticks since boot (field 22 of ``/proc/PID/stat``),
so that a pid reused by a later process is not taken for the dead holder.
Where ``/proc`` is missing the start time is left out (``host:pid``), and rows
written by older versions (``host:pid``) are read the same way.

Liveness can only be known for a holder on this host **in this PID namespace**:
the host part is ``hostname@pidns`` (the inode of ``/proc/self/ns/pid``), because
two containers may share a host name (host networking) while their pids mean
different processes. A holder elsewhere, in another namespace, written by an
older version (plain ``hostname``), or a string we cannot parse (a name given by a
test or an operator) counts as alive and its lease is respected until it expires.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

#: Where Linux describes processes; absent on other systems.
PROC = Path("/proc")


@dataclass(frozen=True)
class Holder:
    """A parsed holder string."""

    host: str
    pid: int
    start_ticks: int | None = None

    def __str__(self) -> str:
        base = f"{self.host}:{self.pid}"
        return base if self.start_ticks is None else f"{base}:{self.start_ticks}"


def process_start_ticks(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot; None if unknown or gone.

    A zombie (killed but not yet reaped by its parent) is reported as gone: it
    runs nothing any more.
    """
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = text[text.rfind(")") + 2:].split()
    if len(fields) < 20 or fields[0] == "Z":
        return None
    try:
        return int(fields[19])  # field 22 overall: starttime
    except ValueError:
        return None


def host_identity() -> str:
    """``hostname@pidns``: where a pid names one process; plain ``hostname`` without ``/proc``."""
    host = socket.gethostname()
    try:
        return f"{host}@{os.stat(PROC / 'self' / 'ns' / 'pid').st_ino}"
    except OSError:
        return host


def this_holder() -> Holder:
    """This process as a lease holder."""
    pid = os.getpid()
    return Holder(host_identity(), pid, process_start_ticks(pid))


def parse_holder(text: str) -> Holder | None:
    """``host:pid[:starttime]`` -> Holder; None for any other shape."""
    parts = text.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit() and parts[2].isdigit():
        return Holder(parts[0], int(parts[1]), int(parts[2]))
    host, _, pid = text.rpartition(":")
    if host and pid.isdigit():
        return Holder(host, int(pid))
    return None


def holder_is_dead(text: str) -> bool:
    """True only when ``text`` names a process on this host that certainly no longer runs."""
    holder = parse_holder(text)
    if holder is None or holder.host != host_identity() or holder.pid <= 0:
        return False
    if PROC.is_dir():
        ticks = process_start_ticks(holder.pid)
        if ticks is None:
            return True  # no such process (or a zombie)
        return holder.start_ticks is not None and ticks != holder.start_ticks  # pid reused
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # it exists, under another user
        return False
    return False
