#!/usr/bin/env python3
"""What a durable journal record costs on this machine's disk, three ways:
a new file per record with fsync of the file and its directory (the
journal's old layout), an append to a growing file with fdatasync, and a
write into a preallocated file with fdatasync (the journal's layout since).
Prints p50 and p90 of --count records each, in the directory given (it must
be on the disk the worker's root is on).

  python3 tests/bench/bench_fsync.py [--dir /var/tmp] [--count 200]"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time


def timed(fn, count):
    t = []
    for i in range(count):
        t0 = time.perf_counter()
        fn(i)
        t.append((time.perf_counter() - t0) * 1000)
    t.sort()
    return statistics.median(t), t[int(len(t) * 0.9)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--count", type=int, default=200)
    args = ap.parse_args()
    d = tempfile.mkdtemp(prefix="fsync-", dir=args.dir)
    rec = b"x" * 200
    try:
        def new_file(i):
            p = os.path.join(d, f"e{i}")
            fd = os.open(p + ".tmp", os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o600)
            os.write(fd, rec)
            os.fsync(fd)
            os.close(fd)
            os.rename(p + ".tmp", p)
            dfd = os.open(d, os.O_RDONLY)
            os.fsync(dfd)
            os.close(dfd)

        grow = os.open(os.path.join(d, "grow"), os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
        pre = os.open(os.path.join(d, "pre"), os.O_CREAT | os.O_RDWR, 0o600)
        os.posix_fallocate(pre, 0, 1 << 20)
        os.fsync(pre)
        rows = [("a file per record, fsync of file and directory", new_file),
                ("append to a growing file, fdatasync",
                 lambda i: (os.write(grow, rec), os.fdatasync(grow))),
                ("write into a preallocated file, fdatasync",
                 lambda i: (os.pwrite(pre, rec, i * len(rec)), os.fdatasync(pre)))]
        print(f"durable 200-byte records in {args.dir}, {args.count} each")
        for name, fn in rows:
            p50, p90 = timed(fn, args.count)
            print(f"  {name:48s} p50 {p50:6.2f} ms  p90 {p90:6.2f} ms")
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
