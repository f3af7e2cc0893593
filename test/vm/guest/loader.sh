# Run inside the guest by test/vm/loader.test.ts (cwd /opt/bpfseal, in the command's session keyring).
# Every release in /root/rel, in one `bpfseal load` call: with a policy that only verifies (user-space
# loader), then with one that requires kernel-verified loads (--loader auto), unloading in between.
# Each mode leaves <mode>.{json,err,rc,t} in /out. Then the refusals: a release whose certificate is not in
# the keyring, and tampered loaders through the test-only path (tamper.mjs).
K="node dist/vm/guest/keyctl.js"
$K add-cert /root/trusted.crt >/out/cert.serial 2>/out/cert.err
up() { cut -d' ' -f1 /proc/uptime; }
# One call per mode loads every release (each its own all-or-nothing unit), one unloads them all.
mode() { # mode policy [extra args]
  m=$1; p=$2; shift 2
  t0=$(up)
  bpfseal load /root/rel/*.bpfseal --policy $p --pin /sys/fs/bpf/$m --host-log /root/hl --state /root/state.json --json "$@" >/out/$m.json 2>/out/$m.err
  echo $? >/out/$m.rc
  t1=$(up)
  echo "$t0 $t1" >/out/$m.t
  ls /sys/fs/bpf/$m >/out/$m.ls 2>/dev/null
  for d in /sys/fs/bpf/$m/*; do [ -d "$d" ] && echo "$d"; done >/out/$m.dirs
  [ -s /out/$m.dirs ] && bpfseal unload $(cat /out/$m.dirs) --host-log /root/hl >/out/$m.unload 2>&1
  rmdir /sys/fs/bpf/$m 2>/dev/null
}
mode user /root/plain.json --loader user
mode kernel /root/require.json
bpfseal load /root/stranger.bpfseal --policy /root/stranger.json --pin /sys/fs/bpf/stranger --host-log /root/hl --state /root/state.json --json >/out/stranger.json 2>/out/stranger.err
echo $? >/out/stranger.rc
[ -e /sys/fs/bpf/stranger ] && echo present >/out/stranger.left
node /root/tamper.mjs /root/rel/minimal.bpfseal >/out/tamper.json 2>/out/tamper.err
echo $? >/out/tamper.rc
ls /sys/fs/bpf >/out/bpffs.ls
