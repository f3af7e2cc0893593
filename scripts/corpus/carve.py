#!/usr/bin/env python3
"""Find BPF ELF objects (EM_BPF=247) in an extracted package tree.

Usage: carve.py <package> <version> <rootdir> <outdir>
Prints TSV lines: outfile  package  version  origin  size
 - standalone files whose own header says EM_BPF are copied as-is;
 - any "\\x7fELF" occurrence at offset > 0 (or inside a non-BPF ELF) with
   EI_CLASS=2 and e_machine=247 is carved: size = e_shoff + e_shnum*e_shentsize
   (clang/libbpf put section headers last), sanity-checked against the
   end of every section's data.
"""
import os, struct, sys, re

EM_BPF = 247


def hdr(buf, off):
    """Return (endian, shoff, shentsize, shnum, shstrndx) if buf[off:] is a 64-bit BPF ELF header."""
    if len(buf) < off + 64 or buf[off:off + 4] != b"\x7fELF":
        return None
    if buf[off + 4] != 2:  # ELFCLASS64
        return None
    ed = buf[off + 5]
    if ed not in (1, 2):
        return None
    e = "<" if ed == 1 else ">"
    (e_type, e_machine) = struct.unpack_from(e + "HH", buf, off + 16)
    if e_machine != EM_BPF:
        return None
    (e_shoff,) = struct.unpack_from(e + "Q", buf, off + 40)
    e_ehsize, e_phentsize, e_phnum, e_shentsize, e_shnum, e_shstrndx = struct.unpack_from(e + "HHHHHH", buf, off + 52)
    if e_shentsize != 64 or e_shnum == 0 or e_shoff < 64:
        return None
    return e, e_shoff, e_shentsize, e_shnum, e_shstrndx


def extent(buf, off):
    h = hdr(buf, off)
    if not h:
        return None
    e, shoff, shentsize, shnum, shstrndx = h
    size = shoff + shnum * shentsize
    if off + size > len(buf):
        return None
    # sanity: every non-NOBITS section must lie within [0, size)
    for i in range(shnum):
        so = off + shoff + i * shentsize
        sh_type = struct.unpack_from(e + "I", buf, so + 4)[0]
        sh_offset, sh_size = struct.unpack_from(e + "QQ", buf, so + 24)
        if sh_type != 8 and sh_type != 0 and sh_offset + sh_size > size:
            return None
    return size


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


def main():
    pkg, ver, root, outdir = sys.argv[1:5]
    os.makedirs(outdir, exist_ok=True)
    used = set(os.listdir(outdir))

    def outname(base):
        base = re.sub(r"[^A-Za-z0-9._+-]", "_", base)
        if base.endswith(".o"):
            base = base[:-2]
        name = f"{pkg}__{base}.o"
        n = 2
        while name in used:
            name = f"{pkg}__{base}~{n}.o"
            n += 1
        used.add(name)
        return name

    for dp, dn, fn in os.walk(root):
        dn.sort()
        for f in sorted(fn):
            p = os.path.join(dp, f)
            if os.path.islink(p) or not os.path.isfile(p):
                continue
            if not is_elf(p):
                continue
            with open(p, "rb") as fh:
                buf = fh.read()
            rel = "/" + os.path.relpath(p, root)
            sz0 = extent(buf, 0)
            if sz0 is not None:
                nm = outname(f)
                with open(os.path.join(outdir, nm), "wb") as o:
                    o.write(buf)
                print(f"{nm}\t{pkg}\t{ver}\t{rel}\t{len(buf)}")
                continue
            hits = []
            start = 1
            while True:
                i = buf.find(b"\x7fELF", start)
                if i < 0:
                    break
                sz = extent(buf, i)
                if sz is None:
                    start = i + 1
                    continue
                hits.append((i, sz))
                start = i + sz
            for i, sz in hits:
                nm = outname(f"{f}.embedded" if len(hits) == 1 else f"{f}.embedded@{i:#x}")
                with open(os.path.join(outdir, nm), "wb") as o:
                    o.write(buf[i:i + sz])
                print(f"{nm}\t{pkg}\t{ver}\tembedded in {rel}@{i:#x}\t{sz}")

if __name__ == "__main__":
    main()
