# Run inside the guest by test/vm/enforce.vm.test.ts (cwd /opt/bpfseal, in the command's session
# keyring). Each step leaves <name>.out, <name>.err and <name>.rc in /out, and a line
# "<name> <start> <end>" (guest uptime, seconds) in /out/times. `enforce.sh short`: on, one unsigned
# load, off, one unsigned load.
up() { cut -d' ' -f1 /proc/uptime; }
step() {
  name=$1; shift
  t0=$(up)
  "$@" >/out/$name.out 2>/out/$name.err
  echo $? >/out/$name.rc
  echo "$name $t0 $(up)" >>/out/times
}
K="node dist/vm/guest/keyctl.js"
R=/root/rel
HL="--host-log /tmp/host-log"
# The harness's files are 0644: the log's private keys must not be readable by others.
chmod 600 $R/alog/log.key $R/alog/log.ed25519 2>/dev/null
[ -f /usr/sbin/bpftool ] && chmod 755 /usr/sbin/bpftool

step cert $K add-cert $R/keys/trusted.crt
if [ "$1" = short ]; then
  step enforce bpfseal enforce --release $R/enforcer.bpfseal --policy $R/policy.json $HL --json
  step unsigned node /root/unsigned-load.mjs
  step off bpfseal enforce --off $HL --json
  step after node /root/unsigned-load.mjs
  exit 0
fi
# A second keyring, not allowlisted, holding the other signer's certificate.
step ring sh -c "kr=\$($K new-keyring other -4) && $K add-cert $R/keys/other.crt \$kr >/dev/null && echo \$kr"
sed "s/\"version\": 1,/\"version\": 1, \"keyring\": $(cat /out/ring.out),/" $R/policy.json >$R/policy-other.json

step before node /root/unsigned-load.mjs
step enforce bpfseal enforce --release $R/enforcer.bpfseal --policy $R/policy.json $HL --json
step status bpfseal enforce --status $HL --json
step again bpfseal enforce --release $R/enforcer.bpfseal --policy $R/policy.json $HL --json
step unsigned node /root/unsigned-load.mjs
[ -f /usr/sbin/bpftool ] && step bpftool bpftool prog load $R/minimal.o /sys/fs/bpf/by_bpftool
step trusted bpfseal load $R/minimal.bpfseal --pin /sys/fs/bpf/trusted --policy $R/policy.json $HL --json
step other bpfseal load $R/other.bpfseal --pin /sys/fs/bpf/other --policy $R/policy-other.json $HL --json
step audit bpfseal audit --kernel --log $R/alog --policy $R/policy.json $HL --state /tmp/audit-state.json --json
step off bpfseal enforce --off $HL --json
step after node /root/unsigned-load.mjs
[ -f /usr/sbin/bpftool ] && step bpftool-after bpftool prog load $R/minimal.o /sys/fs/bpf/by_bpftool_after
true
