#!/usr/bin/env python3
"""Where a proxy's kernel time goes, by what it was doing, from a perf profile.

    kernel_split.py NAME=perf-portcullis.data NAME=perf-nginx.data [--us-per-op NAME=X ...]

Reads the call stacks of `perf record --call-graph` (bench.py --perf keeps
them) and puts every sample in one group, decided by the system call it
was taken in and where inside it:

- the peer's receive processing: a loopback write runs the receiving
  socket's TCP input (softirq) in the writer's time, so a proxy pays for
  its peers' receiving;
- the proxy's own send and receive paths (TCP, IP, copies, skb memory);
- the sleep: epoll_wait switching the process out and back in;
- the poll itself: epoll_wait collecting ready events;
- system call entry and exit, and file descriptor lookup: what batching
  calls through io_uring would save, at most;
- user space (the proxy's code, TLS, libc).

With --us-per-op (the proxy's CPU µs per operation from the same bench),
each group is also shown in µs per operation, which makes two proxies
comparable.
"""

import argparse
import collections
import subprocess
import sys

# Frames that only enter, leave or dispatch a system call. A sample whose
# leaf is one of these is the cost of making a call at all.
ENTRY = (
    "entry_SYSCALL_64", "do_syscall_64", "syscall_exit_to_user_mode", "syscall_return_via_sysret",
    "__x64_sys_", "x64_sys_call", "exit_to_user_mode", "arch_exit_to_user_mode",
    "syscall_exit_work", "__fdget", "fdget", "fput", "__fget_light", "__fget_files", "fd_install",
)

SENDS = ("sendto", "sendmsg", "writev", "write", "sendmmsg", "pwritev")
RECVS = ("recvfrom", "recvmsg", "readv", "read", "recvmmsg", "preadv")

GROUPS = [
    "user space",
    "send: own path",
    "send: peer's receive processing (loopback softirq)",
    "receive: own path",
    "receive: ACK sent back (loopback softirq)",
    "epoll_wait: sleep and wake-up",
    "epoll_wait: collecting events",
    "system call entry, exit, fd lookup",
    "other system calls",
    "interrupts and outside any call",
]


def syscall_of(frames):
    """The system call a kernel stack is in: the frame that do_syscall_64
    called, named by its __x64_sys_ or do_/__sys_ function."""
    # Frames are leaf first; the syscall's own function sits just above
    # do_syscall_64 towards the leaf, possibly behind a dispatcher.
    for i, f in enumerate(frames):
        if f.startswith("do_syscall_64"):
            for g in reversed(frames[:i]):
                for prefix in ("__x64_sys_", "__sys_", "do_", "ksys_", "__do_sys_"):
                    if g.startswith(prefix):
                        return g[len(prefix):]
            return "?"
    return None


def classify(frames):
    if not frames or not frames[0][1]:
        return "user space"
    names = [sym for sym, in_kernel in frames if in_kernel]
    leaf = names[0]
    call = syscall_of(names)
    if call is None:
        return "interrupts and outside any call"
    if any(leaf.startswith(e) for e in ENTRY):
        return "system call entry, exit, fd lookup"
    softirq = any(n.startswith("handle_softirqs") or n.startswith("net_rx_action") for n in names)
    if "epoll_wait" in call or "epoll_pwait" in call:
        if any(n.startswith("schedule") or n.startswith("__schedule") or n.startswith("finish_task_switch")
               for n in names):
            return "epoll_wait: sleep and wake-up"
        return "epoll_wait: collecting events"
    if any(call.startswith(s) for s in SENDS):
        return "send: peer's receive processing (loopback softirq)" if softirq else "send: own path"
    if any(call.startswith(s) for s in RECVS):
        return "receive: ACK sent back (loopback softirq)" if softirq else "receive: own path"
    return "other system calls"


def samples(path):
    """Yields each sample's frames, leaf first, as (symbol, in_kernel)."""
    text = subprocess.run(["perf", "script", "-i", path, "-F", "ip,sym,dso"], check=True,
                          capture_output=True, text=True).stdout
    frames = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            if frames:
                yield frames
            frames = []
            continue
        parts = line.split(None, 1)
        if len(parts) < 2:
            continue
        rest = parts[1]
        kernel = "[kernel.kallsyms]" in rest
        sym = rest.rsplit(" (", 1)[0].split("+0x")[0]
        frames.append((sym, kernel))
    if frames:
        yield frames


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("profiles", nargs="+", metavar="NAME=PERF_DATA")
    ap.add_argument("--us-per-op", action="append", default=[], metavar="NAME=US",
                    help="the proxy's CPU µs per operation, to show each group in µs")
    ap.add_argument("--leaves", type=int, default=0, metavar="N",
                    help="also list each group's N commonest leaf functions")
    args = ap.parse_args()
    per_op = dict((k, float(v)) for k, v in (a.split("=", 1) for a in args.us_per_op))
    shares = {}
    for spec in args.profiles:
        name, path = spec.split("=", 1)
        counts = collections.Counter()
        leaves = collections.defaultdict(collections.Counter)
        for frames in samples(path):
            group = classify(frames)
            counts[group] += 1
            leaves[group][frames[0][0]] += 1
        total = sum(counts.values())
        if not total:
            sys.exit("%s: no samples" % path)
        shares[name] = {g: counts[g] / total for g in GROUPS}
        if args.leaves:
            print("%s, leaf functions by group (share of all samples):" % name)
            for g in GROUPS:
                if counts[g]:
                    print("  %s" % g)
                    for sym, c in leaves[g].most_common(args.leaves):
                        print("    %5.1f%%  %s" % (100.0 * c / total, sym))
            print()
    names = list(shares)
    head = "%-52s" % "group" + "".join("%16s" % n for n in names)
    print(head)
    print("-" * len(head))
    for g in GROUPS:
        cells = []
        for n in names:
            s = shares[n][g]
            cells.append("%6.1f%%" % (100 * s) + ("%7.2f us" % (s * per_op[n]) if n in per_op else "%9s" % ""))
        print("%-52s" % g + "".join("%16s" % c for c in cells))


if __name__ == "__main__":
    main()
