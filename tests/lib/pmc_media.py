#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Read and write dm-pmemcache's on-media records from a test (the layout
of dm-pmemcache.h), to plant damage or versions recovery must handle.

  pmc_media.py DEV commit                   newest valid commit sequence
  pmc_media.py DEV entry I                  origin, seq, crc-ok of entry I
  pmc_media.py DEV find ORIGIN              indexes of valid entries for ORIGIN
  pmc_media.py DEV set-entry I ORIGIN SEQ   write entry I with a right crc
  pmc_media.py DEV tear-commit SLOT         garbage into commit slot SLOT
  pmc_media.py DEV poke OFFSET N            N random bytes at byte OFFSET
  pmc_media.py DEV data-offset              byte offset of data block 0
  pmc_media.py DEV plant-older FIRST N      older versions of origin blocks
                                            FIRST.. in free entries

All I/O is O_DIRECT: the module writes the media without the page cache,
so a buffered read could see stale data, and a buffered write might not
reach the media before the module reads it.
"""
import mmap
import os
import struct
import sys

PAGE = 4096


def _table():
    t = []
    for n in range(256):
        for _ in range(8):
            n = (n >> 1) ^ (0x82F63B78 if n & 1 else 0)
        t.append(n)
    return t


TABLE = _table()


def crc32c(crc, data):
    """The kernel's crc32c(): no inversion before or after."""
    for byte in data:
        crc = TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc


class Cache:
    def __init__(self, path):
        self.fd = os.open(path, os.O_RDWR | os.O_DIRECT)
        sb = self.read(80, 0)
        (self.magic, _, _, self.block_size, self.nr_blocks,
         self.entries, self.data) = struct.unpack_from("<IIIIQQQ", sb)
        assert self.magic == 0x434D4D50, "no pmemcache superblock"
        self.seed = crc32c(0xFFFFFFFF, sb[40:56])

    def _span(self, n, off):
        start = off - off % PAGE
        return start, (off + n - start + PAGE - 1) // PAGE * PAGE

    def read(self, n, off):
        start, size = self._span(n, off)
        buf = mmap.mmap(-1, size)
        os.preadv(self.fd, [buf], start)
        return bytes(buf[off - start:off - start + n])

    def write(self, data, off):
        start, size = self._span(len(data), off)
        buf = mmap.mmap(-1, size)
        os.preadv(self.fd, [buf], start)
        buf[off - start:off - start + len(data)] = data
        os.pwritev(self.fd, [buf], start)

    def commit(self):
        best = -1
        for slot in (0, 1):
            seq, crc = struct.unpack("<QI", self.read(12, 1024 + 1024 * slot))
            if seq & 1 == slot and crc == crc32c(self.seed, struct.pack("<Q", seq)):
                best = max(best, seq)
        return best

    def entry(self, i):
        origin, seq, crc = struct.unpack("<QQI", self.read(20, self.entries + 32 * i))
        ok = crc == crc32c(self.seed, struct.pack("<QQQ", origin, seq, i))
        return origin, seq, ok

    def set_entry(self, i, origin, seq):
        crc = crc32c(self.seed, struct.pack("<QQQ", origin, seq, i))
        self.write(struct.pack("<QQIIQ", origin, seq, crc, 0, 0), self.entries + 32 * i)


def plant_older(c, first, n):
    """Older versions (sequence one below, data of their own) of origin
    blocks FIRST..FIRST+N-1 in free entries from the end."""
    raw = c.read(32 * c.nr_blocks, c.entries)
    ents = [struct.unpack_from("<QQ", raw, 32 * i) for i in range(c.nr_blocks)]
    j = c.nr_blocks - 1
    for o in range(first, first + n):
        i = next(i for i, (org, seq) in enumerate(ents) if org == o and seq and c.entry(i)[2])
        seq = ents[i][1]
        assert seq > 1, f"origin block {o} has sequence {seq}: no older one fits"
        while ents[j][1]:
            j -= 1
        c.set_entry(j, o, seq - 1)
        c.write(os.urandom(c.block_size), c.data + j * c.block_size)
        print(f"entry {j}: origin {o}, sequence {seq - 1} (entry {i} has {seq})")
        j -= 1


def main():
    c = Cache(sys.argv[1])
    cmd, args = sys.argv[2], [int(a) for a in sys.argv[3:]]
    if cmd == "commit":
        print(c.commit())
    elif cmd == "entry":
        print(*c.entry(args[0]))
    elif cmd == "find":
        raw = c.read(32 * c.nr_blocks, c.entries)
        hits = [i for i in range(c.nr_blocks)
                if struct.unpack_from("<Q", raw, 32 * i)[0] == args[0]]
        print(*[i for i in hits if c.entry(i)[1] and c.entry(i)[2]])
    elif cmd == "set-entry":
        c.set_entry(*args)
    elif cmd == "tear-commit":
        c.write(os.urandom(16), 1024 + 1024 * args[0])
    elif cmd == "data-offset":
        print(c.data)
    elif cmd == "plant-older":
        plant_older(c, *args)
    elif cmd == "poke":
        c.write(os.urandom(args[1]), args[0])
    else:
        sys.exit(__doc__)


main()
