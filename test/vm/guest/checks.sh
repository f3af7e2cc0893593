# Run inside the guest by test/vm/boot.test.ts (cwd /opt/bpfseal, in the command's session keyring).
# Each step leaves <name>.out, <name>.err and <name>.rc in /out, so every check reports on its own.
# Times are the guest's /proc/uptime, in seconds.
up() { cut -d' ' -f1 /proc/uptime; }
step() {
  name=$1; shift
  "$@" >/out/$name.out 2>/out/$name.err
  echo $? >/out/$name.rc
}
K="node dist/vm/guest/keyctl.js"

up >/out/t.start
step uname uname -r
up >/out/t.node0; step node-start node -e 0; up >/out/t.node1
step version node dist/bundle/bpfseal.mjs --version; up >/out/t.version
step bpf node /root/bpf-check.mjs
step cert-cli $K add-cert /root/ec.der
step describe sh -c "$K describe \$(cat /out/cert-cli.out)"
step keyring sh -c "kr=\$($K new-keyring vmtest -4) && $K add-cert /root/rsa.pem \$kr >/dev/null && echo \$kr"
step signed-load sh -c "$K add-cert /root/release.crt && bpfseal load /root/x.bpfseal --pin /sys/fs/bpf/vmtest --key /root/release.pub --host-log /tmp/host-log && ls /sys/fs/bpf/vmtest"
grep -E 'asymmetri|keyring +vmtest' /proc/keys >/out/proc-keys
cp /root/blob.bin /out/blob.bin
sha256sum /sys/kernel/btf/vmlinux | cut -d' ' -f1 >/out/btf.sha256
cp /sys/kernel/btf/vmlinux /out/btf-vmlinux
up >/out/t.end
