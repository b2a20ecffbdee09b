#!/usr/bin/env python3
"""What a durable journal record costs on this machine's disk, three ways:
a new file per record with fsync of the file and its directory (the
journal's old layout), an append to a growing file with fdatasync, and a
write into a preallocated file with fdatasync (the journal's layout since).
Prints p50 and p90 of --count records each, in the directory given (it must
be on the disk the worker's root is on).
Then what making an install durable costs, both ways: the worker's Install
as it was (a manifest, then the file, then the manifest again and the
installed record, each with an fsync of the file and one of its directory)
against one syncfs as the barrier before the renames and one at the end
(worker/install.c); and a bundle of 7 files in 3 directories made durable
by syncfs against an fsync of each file (sync_file_range first) and
directory.

  python3 tests/bench/bench_fsync.py [--dir /var/tmp] [--count 200]"""
import argparse
import ctypes
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


LIBC = ctypes.CDLL(None, use_errno=True)


def dir_sync(path, syncfs=False):
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs:
            if LIBC.syncfs(fd) != 0:
                raise OSError(ctypes.get_errno(), "syncfs")
        else:
            os.fsync(fd)
    finally:
        os.close(fd)


def replace(path, data, sync):
    with open(path + ".tmp", "wb") as f:
        f.write(data)
        f.flush()
        if sync:
            os.fsync(f.fileno())
    os.rename(path + ".tmp", path)


def installs(base, count):
    """An install of one file, and an unpacked bundle, made durable."""
    def fsyncs(i):
        d = os.path.join(base, f"i{i}")
        os.makedirs(os.path.join(d, "prefix"))
        replace(os.path.join(d, "manifest"), b"m" * 100, True)
        dir_sync(d)
        replace(os.path.join(d, "prefix", "VERSION"), b"v" * 100, True)
        replace(os.path.join(d, "manifest"), b"m" * 100, True)
        dir_sync(d)
        replace(os.path.join(d, "installed"), b"i" * 40, True)
        dir_sync(d)

    def two_syncfs(i):
        d = os.path.join(base, f"s{i}")
        os.makedirs(os.path.join(d, "prefix"))
        replace(os.path.join(d, "manifest"), b"m" * 100, True)
        with open(os.path.join(d, "prefix", "VERSION.tmp"), "wb") as f:
            f.write(b"v" * 100)
        dir_sync(d, syncfs=True)
        os.rename(os.path.join(d, "prefix", "VERSION.tmp"), os.path.join(d, "prefix", "VERSION"))
        replace(os.path.join(d, "manifest"), b"m" * 100, True)
        replace(os.path.join(d, "installed"), b"i" * 40, True)
        dir_sync(d, syncfs=True)

    def bundle(d):
        dirs = [d, os.path.join(d, "scripts"), os.path.join(d, "app")]
        for x in dirs[1:]:
            os.makedirs(x)
        files = [os.path.join(d, "scripts", f"s{k}.sh") for k in range(5)]
        files += [os.path.join(d, "app", "VERSION"), os.path.join(d, "appspec.yml")]
        for p in files:
            with open(p, "wb") as f:
                f.write(b"x" * 300)
        return dirs, files

    def bundle_syncfs(i):
        d = os.path.join(base, f"b{i}")
        os.makedirs(d)
        bundle(d)
        dir_sync(d, syncfs=True)

    def bundle_fsyncs(i):
        d = os.path.join(base, f"f{i}")
        os.makedirs(d)
        dirs, files = bundle(d)
        fds = [os.open(p, os.O_RDONLY) for p in files]
        for fd in fds:  # start the writeback of all, then wait for each
            LIBC.sync_file_range(fd, ctypes.c_long(0), ctypes.c_long(0), 2)
        for fd in fds:
            os.fdatasync(fd)
            os.close(fd)
        for x in dirs:
            dir_sync(x)

    print(f"an install of one file and a bundle of 7 files made durable, {count} each")
    for name, fn in [("install: fsync of each file and directory (before)", fsyncs),
                     ("install: a syncfs before the renames, one at the end", two_syncfs),
                     ("bundle: fsync of each file and directory", bundle_fsyncs),
                     ("bundle: one syncfs", bundle_syncfs)]:
        p50, p90 = timed(fn, count)
        print(f"  {name:52s} p50 {p50:6.2f} ms  p90 {p90:6.2f} ms")


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
        installs(d, max(args.count // 10, 10))
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
