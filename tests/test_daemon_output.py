"""A daemon's log writer (hermes_lifecycle_cli/daemon_output.py) on real pipes and a real thread:
a log that does not read never blocks the writer's caller, and what had to be dropped is counted
and said once the log reads again. The daemons themselves under a full pipe: test_projector_watch.py."""

from __future__ import annotations

import json
import os
import select

from hermes_lifecycle_cli.daemon_output import DroppingWriter, LineStream
from projector_support import full_pipe


def drain(read_end: int, until: bytes, limit: float = 10.0) -> bytes:
    """Read the pipe until ``until`` has come (or nothing more comes for ``limit`` seconds)."""
    data = b""
    while until not in data:
        ready, _, _ = select.select([read_end], [], [], limit)
        if not ready:
            break
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        data += chunk
    return data


def test_lines_past_the_capacity_are_dropped_counted_and_said_once_the_log_reads():
    read_end, write_end = full_pipe()
    writer = DroppingWriter(write_end, capacity=1000)
    stream = LineStream(writer)
    for number in range(100):  # 100 lines of about 100 bytes, into a pipe that takes none of them
        stream.write(f"line {number:03d} " + "." * 90 + "\n")
    stream.flush()
    assert writer.dropped_total >= 90  # what the queue could not hold; every call returned at once

    data = drain(read_end, b'"log":"dropped"')
    lines = data.replace(b"x", b"").decode().splitlines()
    kept = [line for line in lines if line.startswith("line ")]
    [notice] = [json.loads(line) for line in lines if line.startswith("{")]
    assert notice["log"] == "dropped" and notice["lines"] == writer.dropped_total
    assert len(kept) + notice["lines"] == 100
    assert kept == sorted(kept) and kept[0].startswith("line 000")  # the first ones, in order
    os.close(read_end)
    os.close(write_end)


def test_a_log_whose_reader_is_gone_costs_nothing():
    read_end, write_end = os.pipe()
    os.close(read_end)
    writer = DroppingWriter(write_end)
    stream = LineStream(writer)
    stream.write("nobody reads this\n")
    assert writer.flush(5)  # EPIPE: given up, not waited on
    assert writer.dropped_total == 1
    os.close(write_end)
