#!/usr/bin/env bash
# Build the real-object corpus: BPF ELF objects shipped in Debian packages, standalone or embedded in
# binaries (libbpf skeletons), carved out at the ELF magic. Usage: scripts/corpus/fetch.sh [outdir]
# Needs apt (Debian 12) and python3. Downloads .debs with apt-get download; installs nothing.
set -euo pipefail
out=${1:-/tmp/bpfseal-corpus}
here=$(cd "$(dirname "$0")" && pwd)
pkgs=(libbpf-tools xdp-tools libxdp1 xdp-tests golang-github-cilium-ebpf-dev pcp ir-keytable qemu-system-x86 libknot13)
mkdir -p "$out/debs" "$out/x" "$out/objs"
cd "$out/debs"
for p in "${pkgs[@]}"; do ls "${p}"_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null; done
: > "$out/carve.tsv"
for deb in *.deb; do
  pkg=$(dpkg-deb -f "$deb" Package); ver=$(dpkg-deb -f "$deb" Version)
  rm -rf "$out/x/$pkg"; dpkg-deb -x "$deb" "$out/x/$pkg"
  python3 "$here/carve.py" "$pkg" "$ver" "$out/x/$pkg" "$out/objs" >> "$out/carve.tsv"
done
echo "$(ls "$out/objs" | wc -l) objects in $out/objs"
