"""Shared bits of the benchmarks: machine description and the results file."""
from __future__ import annotations

import datetime
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, Python {platform.python_version()}, {platform.system()}"


def write_section(title: str, body: str) -> None:
    """Replace (or append) the `## title` section of RESULTS.md."""
    text = RESULTS.read_text() if RESULTS.exists() else "# nbsage benchmark results\n\nWritten by `make bench`.\n"
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = f"## {title}\n\nMachine: {machine()}  \nDate: {stamp}\n\n{body.strip()}\n"
    parts = text.split("\n## ")
    head, sections = parts[0], parts[1:]
    kept = [s for s in sections if not s.startswith(title + "\n")]
    new = head.rstrip() + "\n\n" + "\n".join("## " + s.rstrip() + "\n" for s in kept)
    RESULTS.write_text(new.rstrip() + "\n\n" + section)
