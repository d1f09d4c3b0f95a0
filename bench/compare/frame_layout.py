#!/usr/bin/env python3
"""A C++20 coroutine's frame as GCC lays it out: its size and every slot.

GCC describes each coroutine's frame in the object's DWARF as a structure
named `<mangled function>.Frame`, one member per slot: the resume and
destroy pointers, the promise, every local and every co_await's
temporaries (GCC gives each its own slot, none shared). A frame is
allocated per call, so with hundreds of requests in flight each of its
64-byte lines that a request touches is a cache miss on the way up and on
the way back (docs/memory.md, "Per request in flight").

  bench/compare/frame_layout.py OBJECT [PATTERN]
      every frame in OBJECT whose name contains PATTERN: size, name
  bench/compare/frame_layout.py OBJECT PATTERN --slots
      and each slot: offset, size, name (temporaries are D.<n>, awaiters Aw<n>)

OBJECT is an object file or binary built with -g (scripts/build.sh's
RelWithDebInfo), e.g.
  build/proxy/CMakeFiles/turnout_proxy.dir/router/router_filter.cc.o
Needs readelf (binutils).
"""
import re
import subprocess
import sys


def frames(obj):
    """Yields (name, size, [(offset, name)]) for every coroutine frame."""
    out = subprocess.run(["readelf", "--debug-dump=info", obj], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    i = 0
    while i < len(out):
        line = out[i]
        m = re.search(r"DW_AT_name\s*:.*?(\S+\.Frame)$", line)
        if not m or "DW_TAG_structure_type" not in out[i - 1]:
            i += 1
            continue
        name = m.group(1)
        depth = int(re.match(r"\s*<(\d+)>", out[i - 1]).group(1))
        size = None
        slots = []
        slot = None
        i += 1
        while i < len(out):
            head = re.match(r"\s*<(\d+)><", out[i])
            if head and int(head.group(1)) <= depth:
                break
            s = re.search(r"DW_AT_byte_size\s*:\s*(\d+)", out[i])
            if s and size is None and not slots and slot is None:
                size = int(s.group(1))
            n = re.search(r"DW_AT_name\s*:.*?(?:\): )?(\S+)$", out[i])
            if n:
                slot = n.group(1)
            o = re.search(r"DW_AT_data_member_location\s*:\s*(\d+)", out[i])
            if o:
                slots.append((int(o.group(1)), slot))
            i += 1
        if size is not None:
            yield name, size, sorted(slots)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    obj = argv[1]
    pattern = argv[2] if len(argv) > 2 and not argv[2].startswith("--") else ""
    show_slots = "--slots" in argv
    found = False
    for name, size, slots in frames(obj):
        if pattern not in name:
            continue
        found = True
        print(f"{size:6d} {name}")
        if show_slots:
            for k, (off, slot) in enumerate(slots):
                end = slots[k + 1][0] if k + 1 < len(slots) else size
                print(f"       {off:6d} {end - off:5d}  {slot}")
    if not found:
        print(f"frame_layout.py: no coroutine frame matching '{pattern}' in {obj}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
