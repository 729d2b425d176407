#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""dm-writecache's on-media format (version 1, as Linux's
drivers/md/dm-writecache.c defines it), read and changed on a cache
device, for tests/cases/writecache_import: an implementation of the
format independent of the module's.

    wc_image.py uncommit DEV     lower the superblock's sequence to that of
                                 the newest entries (they become
                                 uncommitted)
    wc_image.py dups DEV MIN     two free entries at indices >= MIN made
                                 committed duplicates of dirty sectors, with
                                 data of their own: one newer than the
                                 sector's entry (it wins), one older
    wc_image.py expect DEV OUT SIZE
                                 what the device reads as, SIZE bytes from
                                 sector 0, the origin being zero: the newest
                                 committed entry of each sector; prints the
                                 number of dirty blocks

The device is read and written with O_DIRECT (the kernel writes it
around the page cache).
"""
import mmap
import os
import struct
import sys

SB = 64
FREE = (1 << 64) - 1


class Dev:
    def __init__(self, path, write=False):
        self.fd = os.open(path, (os.O_RDWR if write else os.O_RDONLY) | os.O_DIRECT)

    def read(self, off, n):
        start = off // 4096 * 4096
        length = (off + n - start + 4095) // 4096 * 4096
        buf = mmap.mmap(-1, length)
        got = os.preadv(self.fd, [buf], start)
        assert got == length, (off, n, got)
        return bytes(buf[off - start:off - start + n])

    def write(self, off, data):
        start = off // 4096 * 4096
        length = (off + len(data) - start + 4095) // 4096 * 4096
        buf = mmap.mmap(-1, length)
        buf[:] = self.read(start, length)
        buf[off - start:off - start + len(data)] = data
        assert os.pwritev(self.fd, [buf], start) == length
        os.fsync(self.fd)


def load(dev):
    magic, ver, bs, _, n, seq = struct.unpack("<IIIIQQ", dev.read(0, 32))
    assert magic == 0x23489321 and ver == 1, (hex(magic), ver)
    raw = dev.read(SB, 16 * n)
    ents = [struct.unpack_from("<QQ", raw, 16 * i) for i in range(n)]
    data = (SB + 16 * n + bs - 1) // bs * bs
    return bs, seq, ents, data


def newest(seq, ents):
    best = {}
    for i, (sector, q) in enumerate(ents):
        if q < seq and (sector not in best or q > best[sector][0]):
            best[sector] = (q, i)
    return best


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    dev = Dev(path, write=cmd != "expect")
    bs, seq, ents, data = load(dev)
    if cmd == "uncommit":
        top = max(q for s, q in ents if q < seq)
        lost = sum(1 for s, q in ents if q == top)
        assert lost > 0
        dev.write(24, struct.pack("<Q", top))
        print(f"sequence {seq} -> {top}: {lost} entries uncommitted")
    elif cmd == "dups":
        lo = int(sys.argv[3])
        best = newest(seq, ents)
        free = [i for i, (s, q) in enumerate(ents) if q == FREE and i >= lo]
        wins = sorted((q, s, i) for s, (q, i) in best.items())
        # A newer duplicate needs room below the sequence, an older one
        # a sequence above 0.
        (qa, sa, ia) = next(w for w in wins if w[0] + 1 < seq)
        (qb, sb, ib) = next(w for w in reversed(wins) if w[0] > 0 and w[1] != sa)
        for idx, sector, q in ((free[0], sa, qa + 1), (free[-1], sb, qb - 1)):
            dev.write(SB + 16 * idx, struct.pack("<QQ", sector, q))
            dev.write(data + idx * bs, os.urandom(bs))
            print(f"entry {idx}: sector {sector}, sequence {q}")
        print(f"sector {sa}: entry {ia} (sequence {qa}) superseded by entry {free[0]}; "
              f"sector {sb}: entry {ib} (sequence {qb}) keeps it over entry {free[-1]}")
    elif cmd == "expect":
        size = int(sys.argv[4])
        out = bytearray(size)
        best = newest(seq, ents)
        idx = [i for q, i in best.values()]
        lo, hi = (min(idx), max(idx) + 1) if idx else (0, 0)
        bulk = dev.read(data + lo * bs, (hi - lo) * bs) if (hi - lo) * bs <= 256 << 20 else None
        for sector, (q, i) in best.items():
            assert sector * 512 + bs <= size, sector
            block = bulk[(i - lo) * bs:(i - lo + 1) * bs] if bulk is not None else dev.read(data + i * bs, bs)
            out[sector * 512:sector * 512 + bs] = block
        open(sys.argv[3], "wb").write(out)
        print(len(best))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
