"""Keep the memory a trainer frees between steps, so its steps stop faulting pages in.

Every training step allocates and frees the same activation tensors, megabytes each. With
glibc's default settings the freed top of the heap goes back to the system and large
blocks come from fresh mmaps, so the next step faults each of those pages in again and the
kernel zeroes it: on a CPU run that is kernel time taken from the step (BENCHMARKS.md,
"Heap"). Keeping the freed memory leaves the peak where it was; the process just stays
at its peak between steps instead of shrinking and growing again.

The process entry point (`allo train`) asks for it, not the library: a program that calls
`allo.train` keeps its own allocator settings. It is left alone off glibc, where the user
has tuned glibc's malloc (a MALLOC_*_ variable or GLIBC_TUNABLES), and with
ALLO_KEEP_FREED_MEMORY=0.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Mapping

OPT_OUT = "ALLO_KEEP_FREED_MEMORY"

# mallopt(3) parameter numbers, from glibc's <malloc.h>
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

SETTINGS = (
    (M_TRIM_THRESHOLD, 2**31 - 1),  # never hand the heap's free top back (mallopt takes an int)
    (M_TOP_PAD, 64 << 20),  # grow the heap in steps of 64 MiB, not page by page
    (M_MMAP_THRESHOLD, 1 << 30),  # only blocks of 1 GiB or more get their own mmap
)


def on_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (AttributeError, ValueError, OSError):  # not a POSIX system, or not glibc
        return False


def user_tuned(environ: Mapping[str, str]) -> bool:
    """Whether the user already chose glibc's malloc settings for this process."""
    named = any(key.startswith("MALLOC_") and key.endswith("_") for key in environ)
    return named or "malloc" in environ.get("GLIBC_TUNABLES", "")


def keep_freed_memory(environ: Mapping[str, str] | None = None) -> bool:
    """Set glibc's malloc to keep freed memory for reuse; whether it was set."""
    environ = os.environ if environ is None else environ
    if environ.get(OPT_OUT, "").strip() == "0" or user_tuned(environ) or not on_glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return all([mallopt(parameter, value) == 1 for parameter, value in SETTINGS])
