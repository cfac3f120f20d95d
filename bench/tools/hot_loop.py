#!/usr/bin/python3
"""Checks the worker's hot loop in a release binary for ARC, exclusivity checks and
allocation: disassembles the loop function (default: TunnelDataplane.Worker.run()), and
every function of the binary it calls directly (transitively), and lists each call to a
forbidden runtime function with the source line it comes from (DWARF line table; for
inlined code that is the inlined function's line) and the call chain from the loop.

Exit status: 0 clean, 1 forbidden calls found, 2 usage or tool error.

    /usr/bin/python3 bench/tools/hot_loop.py .build/release/tunnelfwd
"""
import argparse
import bisect
import re
import subprocess
import sys

# Runtime entry points that must not run per packet: reference counting, dynamic
# exclusivity enforcement, heap allocation.
FORBIDDEN = re.compile(
    r"^(swift_(retain|release|unknownObjectRetain|unknownObjectRelease|bridgeObjectRetain|bridgeObjectRelease"
    r"|nonatomic_retain|nonatomic_release|allocObject|allocBox|slowAlloc|beginAccess|endAccess)\w*"
    r"|malloc|calloc|realloc|posix_memalign|aligned_alloc|_Znwm|_Znam)$")

# Not forbidden (shutdown frees what start-up allocated), but listed with their source
# lines so that one inside the loop stands out.
DEALLOCATION = re.compile(r"^(free|swift_slowDealloc|swift_deallocObject|swift_deallocUninitializedObject)$")

LINE = re.compile(r"^(/\S+?):(\d+)(?: \(discriminator \d+\))?$")
INSN = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
TARGET = re.compile(r"^([0-9a-f]+) <(.+)>$")


def run(argv, stdin=None):
    p = subprocess.run(argv, input=stdin, capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit("%s failed: %s" % (argv[0], p.stderr.strip()[:500]))
    return p.stdout


def demangle(names):
    out = run(["swift-demangle", "--compact"], stdin="\n".join(names) + "\n").split("\n")
    return out[:len(names)]


class Binary:
    def __init__(self, path):
        self.path = path
        rows = []
        for line in run(["nm", "--defined-only", "-S", path]).splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[2] in "tTwW":
                rows.append((int(parts[0], 16), int(parts[1], 16), parts[3]))
        rows.sort()
        names = demangle([r[2] for r in rows])
        self.functions = [(a, s, m, d) for (a, s, m), d in zip(rows, names)]
        self.starts = [f[0] for f in self.functions]

    def find(self, pattern):
        rx = re.compile(pattern)
        hits = [f for f in self.functions if rx.search(f[3]) or rx.search(f[2])]
        return hits

    def function_at(self, address):
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0:
            a, s, m, d = self.functions[i]
            if a <= address < a + max(s, 1):
                return self.functions[i]
        return None

    def disassemble(self, function):
        """Yields (address, mnemonic, target address or None, target name, source line)."""
        start, size, mangled, _ = function
        text = run(["objdump", "-d", "-l", "--no-show-raw-insn", "-M", "att",
                    "--start-address=%#x" % start, "--stop-address=%#x" % (start + size), self.path])
        source = None
        out = []
        for line in text.splitlines():
            m = LINE.match(line.strip())
            if m:
                source = "%s:%s" % (m.group(1), m.group(2))
                continue
            m = INSN.match(line)
            if not m:
                continue
            mnemonic, operands = m.group(2), m.group(3).strip()
            if mnemonic.startswith("lea") and "#" in operands:
                # A function whose address is taken (a closure handed to a callee, e.g.
                # PendingBuffer.drain's send:) runs from the loop too: follow it.
                t = TARGET.match(operands.split("#", 1)[1].strip())
                if t:
                    out.append((int(m.group(1), 16), "lea", int(t.group(1), 16), t.group(2), source))
                continue
            if not (mnemonic.startswith("call") or mnemonic.startswith("jmp")):
                continue
            t = TARGET.match(operands)
            if t:
                out.append((int(m.group(1), 16), mnemonic, int(t.group(1), 16), t.group(2), source))
            elif mnemonic.startswith("call"):
                out.append((int(m.group(1), 16), mnemonic, None, operands, source))
        return out


def short(path_line, root):
    if path_line and root and path_line.startswith(root):
        return path_line[len(root):].lstrip("/")
    return path_line or "?"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("binary")
    p.add_argument("--symbol", default=r"^TunnelDataplane\.Worker\.run\(\) -> \(\)$",
                   help="regex on the demangled name of the loop function")
    p.add_argument("--depth", type=int, default=8, help="how deep to follow direct calls (default 8)")
    p.add_argument("--direct-only", action="store_true", help="only the loop function itself, not its callees")
    p.add_argument("--source-root", default="", help="shorten source paths under this directory")
    p.add_argument("-v", "--verbose", action="store_true", help="list every function visited and every call out")
    a = p.parse_args()

    binary = Binary(a.binary)
    roots = binary.find(a.symbol)
    if len(roots) != 1:
        print("hot_loop: %d functions match %r in %s%s" % (
            len(roots), a.symbol, a.binary,
            "" if not roots else ": " + "; ".join(r[3] for r in roots[:5])), file=sys.stderr)
        print("  (renamed or inlined away? pass --symbol with the loop's demangled name)", file=sys.stderr)
        return 2
    root = roots[0]
    print("loop: %s (%s, %d bytes at %#x)" % (root[3], root[2], root[1], root[0]))

    findings = []          # (chain, callee, source, address)
    deallocations = []
    visited = {root[0]}
    indirect = 0
    external = {}
    queue = [(root, [root[3]])]
    while queue:
        function, chain = queue.pop(0)
        if a.verbose:
            print("  visit %s" % " -> ".join(chain))
        for address, mnemonic, target, name, source in binary.disassemble(function):
            if target is None:
                indirect += 1
                continue
            if function[0] <= target < function[0] + function[1]:
                continue          # a jump inside the function
            plain = name.split("@plt")[0].split("+0x")[0]
            if mnemonic == "lea":
                callee = binary.function_at(target)
                if callee is None or callee[0] != target or callee[0] in visited or a.direct_only:
                    continue      # data, or a function already seen
                visited.add(callee[0])
                queue.append((callee, chain + ["(address taken) " + callee[3]]))
                continue
            if DEALLOCATION.match(plain):
                deallocations.append((chain, plain, source))
            if FORBIDDEN.match(plain):
                findings.append((chain, plain, source, address))
                continue
            if "@plt" in name:
                external[plain] = external.get(plain, 0) + 1
                continue
            callee = binary.function_at(target)
            if callee is None or callee[0] in visited or a.direct_only or len(chain) > a.depth:
                continue
            visited.add(callee[0])
            queue.append((callee, chain + [callee[3]]))

    print("functions checked: %d (the loop and the functions of this binary it calls, transitively)" % len(visited))
    print("calls into shared libraries: %s" % (", ".join("%s x%d" % kv for kv in sorted(external.items())) or "none"))
    print("indirect calls (DPDK PMD burst functions through rte_eth_fp_ops, closures): %d" % indirect)
    if deallocations:
        where = sorted({short(src, a.source_root) for _, _, src in deallocations})
        print("deallocations (allowed outside the loop; check these lines): %s" % ", ".join(where))
    if not findings:
        print("OK: no retain/release, exclusivity check or allocation reachable from the loop")
        return 0
    print("FORBIDDEN CALLS: %d" % len(findings))
    by_chain = {}
    for chain, callee, source, address in findings:
        by_chain.setdefault(tuple(chain), []).append((callee, source, address))
    for chain, items in by_chain.items():
        print("\n  in %s" % chain[-1])
        if len(chain) > 1:
            print("     reached via: %s" % " -> ".join(chain[:-1]))
        for callee, source, address in items:
            print("     %#x  call %-28s  %s" % (address, callee, short(source, a.source_root)))
    return 1


if __name__ == "__main__":
    sys.exit(main())
