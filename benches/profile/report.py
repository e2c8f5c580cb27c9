#!/usr/bin/env python3
"""Per-operation costs from two profiled runs of the same scenario.

    report.py callgrind --scenario h1 --top 25 SMALL FILE_SMALL LARGE FILE_LARGE
    report.py callgrind --scenario h1 --callers REGEX SMALL FILE_SMALL LARGE FILE_LARGE
    report.py callgrind --scenario h1 --callees REGEX SMALL FILE_SMALL LARGE FILE_LARGE
    report.py strace    --scenario h1          SMALL FILE_SMALL LARGE FILE_LARGE
    report.py table SUMMARY

Both runs served the same connections; they differ only in the number of
operations (SMALL and LARGE). Subtracting the small run from the large one
takes out start-up, handshakes and shutdown, and dividing by LARGE - SMALL
gives the cost of one operation: instructions (callgrind, in total and per
function, exclusive and inclusive) or system calls (strace -c -f, per call).
With --proxy and --summary, the total per operation is also appended to
SUMMARY, and `table SUMMARY` puts the proxies side by side, with
portcullis' count over each peer's and over the lower of them. Called by
callgrind.sh.
"""

import argparse
import functools
import re
import subprocess
import sys

# "1,234,567 (12.34%)  file:function [object]" in callgrind_annotate's
# function list; the percentage is absent in older versions.
ROW = re.compile(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?(.+?)\s*$")


def total_ir(path):
    with open(path) as f:
        for line in f:
            m = re.match(r"^(?:summary|totals):\s+(\d+)", line)
            if m:
                return int(m.group(1))
    sys.exit("%s: no totals line" % path)


@functools.lru_cache(maxsize=None)  # the one-time cost reads the inclusive list too
def functions(path, inclusive):
    """Ir by function from callgrind_annotate. callgrind lists a function
    once per source file its code came from (inlining); exclusive costs of
    those entries add up, inclusive ones overlap, so the largest is kept."""
    argv = ["callgrind_annotate", "--threshold=100", "--auto=no",
            "--inclusive=%s" % ("yes" if inclusive else "no"), path]
    text = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    out = {}
    in_list = False
    for line in text.splitlines():
        if re.match(r"^Ir\s+file:function", line.strip()):
            in_list = True
            continue
        if not in_list or line.startswith("---"):
            continue
        if not line.strip():
            break
        m = ROW.match(line)
        if m:
            name, ir = function_name(m.group(2)), int(m.group(1).replace(",", ""))
            out[name] = max(out.get(name, 0), ir) if inclusive else out.get(name, 0) + ir
    return out


def function_name(entry):
    """`file:function [object]` without the file and the object."""
    m = re.match(r"^[^:]*:(.*?)(?: \[.*\])?$", entry)
    return m.group(1) if m else entry


def short(name, width=120):
    return name if len(name) <= width else name[: width - 3] + "..."


def neighbours(path, pattern, callees):
    """Inclusive Ir of each call between a function matching `pattern` and
    its callers (or its callees), from callgrind_annotate's call trees."""
    tree, mark_other = ("calling", ">") if callees else ("caller", "<")
    argv = ["callgrind_annotate", "--threshold=100", "--auto=no", "--tree=" + tree, path]
    text = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
    out = {}
    block, current = [], None
    for line in text.splitlines():
        if not line.strip():
            block, current = [], None
            continue
        m = re.match(r"^\s*([\d,]+)\s+(?:\(\s*[\d.]+%\)\s+)?([<>*])\s+(.+?)(?: \(\d+x\))?(?: \[.*\])?\s*$", line)
        if not m:
            continue
        ir, mark, name = int(m.group(1).replace(",", "")), m.group(2), function_name(m.group(3))
        if mark == "*":
            current = name if re.search(pattern, name) else None
            if current and not callees:
                for other, cost in block:
                    key = "%s  <  %s" % (name, other)
                    out[key] = out.get(key, 0) + cost
        elif mark == mark_other:
            if callees and current:
                key = "%s  >  %s" % (current, name)
                out[key] = out.get(key, 0) + ir
            elif not callees:
                block.append((name, ir))
    return out


# aws-lc seeds its random generator once per process from CPU timing
# jitter, and the number of rounds that takes varies from run to run (by
# as much as half a million instructions under callgrind). It is not a
# per-operation cost, so it is taken out of the totals and the rows.
ONE_TIME = re.compile(r"tree_jitter_initialize_once|jent_|^rol64$")


def one_time_ir(path):
    return max((ir for name, ir in functions(path, True).items() if "tree_jitter_initialize_once" in name),
               default=0)


def per_op(small, large, n):
    keys = set(small) | set(large)
    return {k: (large.get(k, 0) - small.get(k, 0)) / n for k in keys}


def title(args):
    return "%s %s" % (args.proxy, args.scenario) if args.proxy else args.scenario


def summarise(args, tool, value):
    if args.summary:
        with open(args.summary, "a") as f:
            f.write("%s\t%s\t%s\t%r\n" % (tool, args.proxy or "portcullis", args.scenario, value))


def callgrind(args):
    n = args.large - args.small
    ir = ((total_ir(args.file_large) - one_time_ir(args.file_large))
          - (total_ir(args.file_small) - one_time_ir(args.file_small))) / n
    summarise(args, "callgrind", ir)
    print("\n== %s: %s instructions per operation (callgrind; %d - %d operations)" % (
        title(args), format(round(ir), ","), args.large, args.small))
    if args.callers or args.callees:
        pattern = args.callers or args.callees
        rows = per_op(neighbours(args.file_small, pattern, bool(args.callees)),
                      neighbours(args.file_large, pattern, bool(args.callees)), n)
        rows = {k: v for k, v in rows.items() if not ONE_TIME.search(k)}
        print("\n%s of /%s/, inclusive Ir per operation:" % ("callees" if args.callees else "callers", pattern))
        for name, v in sorted(rows.items(), key=lambda kv: -kv[1])[: args.top]:
            print("%12s %5.1f%%  %s" % (format(round(v), ","), 100.0 * v / ir if ir else 0, short(name, 200)))
        return
    for inclusive in (False, True):
        rows = per_op(functions(args.file_small, inclusive), functions(args.file_large, inclusive), n)
        rows = {k: v for k, v in rows.items() if not ONE_TIME.search(k)}
        best = sorted(rows.items(), key=lambda kv: -kv[1])[: args.top]
        print("\n%s Ir per operation, top %d:" % ("inclusive" if inclusive else "exclusive", args.top))
        for name, v in best:
            print("%12s %5.1f%%  %s" % (format(round(v), ","), 100.0 * v / ir if ir else 0, short(name)))


def strace_counts(path):
    """(calls, errors) by system call from an `strace -c` summary."""
    out = {}
    with open(path) as f:
        for line in f:
            tokens = line.split()
            if len(tokens) not in (5, 6) or not re.match(r"^[\d.]+$", tokens[0]) or tokens[-1] == "total":
                continue
            calls = int(tokens[3])
            errors = int(tokens[4]) if len(tokens) == 6 else 0
            out[tokens[-1]] = (calls, errors)
    return out


def strace(args):
    n = args.large - args.small
    small, large = strace_counts(args.file_small), strace_counts(args.file_large)
    calls = per_op({k: v[0] for k, v in small.items()}, {k: v[0] for k, v in large.items()}, n)
    errors = per_op({k: v[1] for k, v in small.items()}, {k: v[1] for k, v in large.items()}, n)
    summarise(args, "strace", sum(calls.values()))
    print("\n== %s: %.2f system calls per operation (strace -c -f; %d - %d operations)" % (
        title(args), sum(calls.values()), args.large, args.small))
    for name, v in sorted(calls.items(), key=lambda kv: -kv[1]):
        if abs(v) >= 0.005:
            err = " (%.2f failed)" % errors[name] if errors.get(name, 0) >= 0.005 else ""
            print("%8.2f  %s%s" % (v, name, err))


PEERS = ("nginx", "haproxy")
UNITS = {"callgrind": "user-space instructions per operation", "strace": "system calls per operation"}


def table(path):
    """The proxies side by side, per tool and scenario, from a summary file;
    portcullis over each peer, and over the lower of the peers."""
    values, scenarios, proxies = {}, [], []
    with open(path) as f:
        for line in f:
            tool, proxy, scenario, value = line.rstrip("\n").split("\t")
            values[(tool, proxy, scenario)] = float(value)
            scenarios += [scenario] if scenario not in scenarios else []
            proxies += [proxy] if proxy not in proxies else []
    order = [p for p in PEERS if p in proxies] + [p for p in proxies if p not in PEERS]
    peers = [p for p in order if p in PEERS]
    have_p = "portcullis" in order
    ratio_heads = ["p/%s" % p for p in peers] + (["p/best"] if len(peers) > 1 else [])
    for tool in ("callgrind", "strace"):
        if not any(k[0] == tool for k in values):
            continue
        rows = []
        for scenario in scenarios:
            got = {p: values.get((tool, p, scenario)) for p in order}
            row = [scenario] + [count(got[p], tool) for p in order]
            if have_p and peers:
                ratios = [got["portcullis"] / got[p] if got["portcullis"] is not None and got[p] else None
                          for p in peers]
                known = [got[p] for p in peers if got[p]]
                if len(peers) > 1:
                    ratios.append(got["portcullis"] / min(known) if known and got["portcullis"] is not None else None)
                row += ["-" if r is None else "%.2f" % r for r in ratios]
            rows.append(row)
        head = ["scenario"] + order + (ratio_heads if have_p and peers else [])
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
        print("\n== %s, side by side" % UNITS[tool])
        for r in [head] + rows:
            print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))


def count(v, tool):
    if v is None:
        return "-"
    return format(round(v), ",") if tool == "callgrind" else "%.2f" % v


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "table":
        table(sys.argv[2])
        return
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tool", choices=["callgrind", "strace"])
    p.add_argument("--scenario", required=True)
    p.add_argument("--proxy", help="the proxy profiled, for the titles and the summary")
    p.add_argument("--summary", metavar="FILE", help="append the total per operation to FILE")
    p.add_argument("--top", type=int, default=25)
    p.add_argument("--callers", metavar="REGEX", help="instead of the top functions: who calls the functions matching REGEX")
    p.add_argument("--callees", metavar="REGEX", help="instead of the top functions: what the functions matching REGEX call")
    p.add_argument("small", type=int)
    p.add_argument("file_small")
    p.add_argument("large", type=int)
    p.add_argument("file_large")
    args = p.parse_args()
    callgrind(args) if args.tool == "callgrind" else strace(args)


if __name__ == "__main__":
    main()
