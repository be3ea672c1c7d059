"""Keep xgboost's collective on loopback when every host of a job is on this machine.

xgboost's collective (3.x, src/collective/comm.cc) has each worker listen for its peers on a port
bound to INADDR_ANY (`TCPSocket::BindHost`), with no setting to choose the address: a 2-host job
on one machine would open ports on every interface of it, reachable from the network, although
its peers are all on 127.0.0.1. nbsage binds what it opens on its own to loopback, so when the
job's master address is a loopback one, `bind_to_loopback(library)` redirects that one library's
calls to bind(2): an address "any" (0.0.0.0, ::) becomes loopback (127.0.0.1, ::1); any other
address is bound as asked. It does so by pointing the library's own import slots for `bind`
(its GOT entries, found from the ELF relocations) at a small function here; the C library, and
every other library of the process, are unchanged.

Where that cannot be done (not Linux, not a 64-bit little-endian ELF, no such relocation) it
returns the reason and changes nothing: the collective still works, listening as xgboost does.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import ipaddress
import mmap
import os
import socket
import struct
import sys
import threading

_RELOCATIONS = {"x86_64": (6, 7), "aarch64": (1025, 1026)}  # (GLOB_DAT, JUMP_SLOT) per machine
_SHT_RELA, _SHT_DYNSYM = 4, 11
_RTLD_DI_LINKMAP = 2
_PROT = {"r": mmap.PROT_READ, "w": mmap.PROT_WRITE, "x": mmap.PROT_EXEC}
_BIND = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32)

_lock = threading.Lock()
_patched: dict[str, object] = {}  # library path -> the callback (kept alive while the library may call it)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an address, IPv4 or IPv6) resolves to loopback addresses only."""
    try:
        found = {info[4][0] for info in socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)}
        return bool(found) and all(ipaddress.ip_address(a.split("%", 1)[0]).is_loopback for a in found)
    except (OSError, ValueError, UnicodeError):
        return False


def _bind_slots(path: str) -> list[int]:
    """Offsets (from the library's load address) of the GOT entries through which it calls bind."""
    machine = os.uname().machine
    if machine not in _RELOCATIONS:
        raise OSError(f"machine {machine} is not one of {', '.join(_RELOCATIONS)}")
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise OSError(f"{path} is not a 64-bit little-endian ELF file")
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    wanted = set(_RELOCATIONS[machine])
    slots = []
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != _SHT_RELA or not entsize or sections[link][1] != _SHT_DYNSYM:
            continue
        symtab, strtab = sections[link], sections[sections[link][6]]
        for at in range(offset, offset + size, entsize):
            r_offset, r_info, _ = struct.unpack_from("<QQq", data, at)
            if (r_info & 0xFFFFFFFF) not in wanted:
                continue
            name_at, = struct.unpack_from("<I", data, symtab[4] + (r_info >> 32) * symtab[9])
            start = strtab[4] + name_at
            if data[start:data.index(b"\0", start)] == b"bind":
                slots.append(r_offset)
    if not slots:
        raise OSError(f"{path} has no relocation for bind")
    return slots


def _loaded(handle: int) -> tuple[int, str]:
    """The library's load address and file, from its link_map (dlinfo): struct link_map starts with
    l_addr and l_name."""
    libc = ctypes.CDLL(None)
    dlinfo = getattr(libc, "dlinfo", None) or ctypes.CDLL(ctypes.util.find_library("dl") or "libdl.so.2").dlinfo
    link_map = ctypes.c_void_p()
    if dlinfo(ctypes.c_void_p(handle), _RTLD_DI_LINKMAP, ctypes.byref(link_map)) != 0:
        raise OSError("dlinfo(RTLD_DI_LINKMAP) failed")
    name = ctypes.c_char_p.from_address(link_map.value + ctypes.sizeof(ctypes.c_size_t)).value
    return ctypes.c_size_t.from_address(link_map.value).value, os.fsdecode(name or b"")


def _protection(address: int) -> int:
    with open("/proc/self/maps") as f:
        for line in f:
            span, perms = line.split()[:2]
            start, end = (int(x, 16) for x in span.split("-"))
            if start <= address < end:
                return sum(bit for flag, bit in _PROT.items() if flag in perms)
    raise OSError(f"address {address:#x} is not mapped")


def _write_pointer(address: int, value: int) -> None:
    """Write a pointer into a (possibly read-only, RELRO) GOT slot, then restore its protection."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    page = address & ~(mmap.PAGESIZE - 1)
    before = _protection(address)
    if not before & mmap.PROT_WRITE and libc.mprotect(page, mmap.PAGESIZE, before | mmap.PROT_WRITE) != 0:
        raise OSError(ctypes.get_errno(), "mprotect of the GOT failed")
    ctypes.c_void_p.from_address(address).value = value
    if not before & mmap.PROT_WRITE:
        libc.mprotect(page, mmap.PAGESIZE, before)


def _loopback_bind():
    libc = ctypes.CDLL(None)  # errno stays as bind(2) left it, for the caller to read
    real = libc.bind
    real.argtypes, real.restype = (ctypes.c_int, ctypes.c_void_p, ctypes.c_uint32), ctypes.c_int

    def bind(fd: int, address: int, length: int) -> int:
        family = ctypes.c_ushort.from_address(address).value if address and length >= 2 else -1
        if family == socket.AF_INET and length >= 8 and ctypes.string_at(address + 4, 4) == b"\0" * 4:
            copy = ctypes.create_string_buffer(ctypes.string_at(address, length), length)
            copy[4:8] = socket.inet_aton("127.0.0.1")
            return real(fd, ctypes.addressof(copy), length)
        if family == socket.AF_INET6 and length >= 24 and ctypes.string_at(address + 8, 16) == b"\0" * 16:
            copy = ctypes.create_string_buffer(ctypes.string_at(address, length), length)
            copy[8:24] = socket.inet_pton(socket.AF_INET6, "::1")
            return real(fd, ctypes.addressof(copy), length)
        return real(fd, address, length)

    return _BIND(bind)


def bind_to_loopback(library: ctypes.CDLL) -> str | None:
    """Make `library`'s own bind(2) calls bind "any" addresses to loopback; None when done (or
    already done), else the reason it could not be done (nothing is changed then)."""
    path = getattr(library, "_name", None)
    if not path:
        return "the library to bind to loopback was not found"
    if not sys.platform.startswith("linux"):
        return f"binding {os.path.basename(path)} to loopback needs Linux"
    with _lock:
        if path in _patched:
            return None
        try:
            base, loaded_from = _loaded(library._handle)
            slots = _bind_slots(loaded_from or path)
            callback = _loopback_bind()
        except (OSError, ValueError, AttributeError, IndexError, struct.error) as e:
            return f"{os.path.basename(path)} could not be bound to loopback ({e})"
        _patched[path] = callback  # kept before any slot points at it, and for the process's life
        target = ctypes.cast(callback, ctypes.c_void_p).value
        try:
            for slot in slots:
                _write_pointer(base + slot, target)
        except OSError as e:
            return f"{os.path.basename(path)} could not be bound to loopback ({e})"
    return None
