/**
 * Section name -> program type and expected attach type, following libbpf's conventions (its
 * section_defs table): a name ending in '+' matches the name itself or name + '/' + anything;
 * '.s' variants are sleepable (BPF_F_SLEEPABLE), 'xdp.frags' sets BPF_F_XDP_HAS_FRAGS; ATTACH_BTF
 * sections name a kernel function or type that the host must resolve at load time (a declared fix-up).
 */
import { ATTACH_TYPE, PROG_TYPE } from './constants.js';
import { globMatch } from '../glob.js';

interface Row { sec: string; prog: string; attach: string; flags: number }
const SLEEPABLE = 1, XDP_FRAGS = 2, ATTACH_BTF = 4, USDT = 8;
const ROWS: Row[] = [
  { sec: 'socket', prog: 'socket_filter', attach: '', flags: 0 },
  { sec: 'sk_reuseport/migrate', prog: 'sk_reuseport', attach: 'sk_reuseport_select_or_migrate', flags: 0 },
  { sec: 'sk_reuseport', prog: 'sk_reuseport', attach: 'sk_reuseport_select', flags: 0 },
  { sec: 'kprobe+', prog: 'kprobe', attach: '', flags: 0 },
  { sec: 'uprobe+', prog: 'kprobe', attach: '', flags: 0 },
  { sec: 'uprobe.s+', prog: 'kprobe', attach: '', flags: SLEEPABLE },
  { sec: 'kretprobe+', prog: 'kprobe', attach: '', flags: 0 },
  { sec: 'uretprobe+', prog: 'kprobe', attach: '', flags: 0 },
  { sec: 'uretprobe.s+', prog: 'kprobe', attach: '', flags: SLEEPABLE },
  { sec: 'kprobe.multi+', prog: 'kprobe', attach: 'trace_kprobe_multi', flags: 0 },
  { sec: 'kretprobe.multi+', prog: 'kprobe', attach: 'trace_kprobe_multi', flags: 0 },
  { sec: 'kprobe.session+', prog: 'kprobe', attach: 'trace_kprobe_session', flags: 0 },
  { sec: 'uprobe.multi+', prog: 'kprobe', attach: 'trace_uprobe_multi', flags: 0 },
  { sec: 'uretprobe.multi+', prog: 'kprobe', attach: 'trace_uprobe_multi', flags: 0 },
  { sec: 'uprobe.session+', prog: 'kprobe', attach: 'trace_uprobe_session', flags: 0 },
  { sec: 'uprobe.multi.s+', prog: 'kprobe', attach: 'trace_uprobe_multi', flags: SLEEPABLE },
  { sec: 'uretprobe.multi.s+', prog: 'kprobe', attach: 'trace_uprobe_multi', flags: SLEEPABLE },
  { sec: 'uprobe.session.s+', prog: 'kprobe', attach: 'trace_uprobe_session', flags: SLEEPABLE },
  { sec: 'ksyscall+', prog: 'kprobe', attach: '', flags: 0 },
  { sec: 'kretsyscall+', prog: 'kprobe', attach: '', flags: 0 },
  { sec: 'usdt+', prog: 'kprobe', attach: '', flags: USDT },
  { sec: 'usdt.s+', prog: 'kprobe', attach: '', flags: SLEEPABLE | USDT },
  { sec: 'tc/ingress', prog: 'sched_cls', attach: 'tcx_ingress', flags: 0 },
  { sec: 'tc/egress', prog: 'sched_cls', attach: 'tcx_egress', flags: 0 },
  { sec: 'tcx/ingress', prog: 'sched_cls', attach: 'tcx_ingress', flags: 0 },
  { sec: 'tcx/egress', prog: 'sched_cls', attach: 'tcx_egress', flags: 0 },
  { sec: 'tc', prog: 'sched_cls', attach: '', flags: 0 },
  { sec: 'classifier', prog: 'sched_cls', attach: '', flags: 0 },
  { sec: 'action', prog: 'sched_act', attach: '', flags: 0 },
  { sec: 'netkit/primary', prog: 'sched_cls', attach: 'netkit_primary', flags: 0 },
  { sec: 'netkit/peer', prog: 'sched_cls', attach: 'netkit_peer', flags: 0 },
  { sec: 'tracepoint+', prog: 'tracepoint', attach: '', flags: 0 },
  { sec: 'tp+', prog: 'tracepoint', attach: '', flags: 0 },
  { sec: 'tracepoint.s+', prog: 'tracepoint', attach: '', flags: SLEEPABLE },
  { sec: 'tp.s+', prog: 'tracepoint', attach: '', flags: SLEEPABLE },
  { sec: 'raw_tracepoint+', prog: 'raw_tracepoint', attach: '', flags: 0 },
  { sec: 'raw_tp+', prog: 'raw_tracepoint', attach: '', flags: 0 },
  { sec: 'raw_tracepoint.s+', prog: 'raw_tracepoint', attach: '', flags: SLEEPABLE },
  { sec: 'raw_tp.s+', prog: 'raw_tracepoint', attach: '', flags: SLEEPABLE },
  { sec: 'raw_tracepoint.w+', prog: 'raw_tracepoint_writable', attach: '', flags: 0 },
  { sec: 'raw_tp.w+', prog: 'raw_tracepoint_writable', attach: '', flags: 0 },
  { sec: 'tp_btf+', prog: 'tracing', attach: 'trace_raw_tp', flags: ATTACH_BTF },
  { sec: 'tp_btf.s+', prog: 'tracing', attach: 'trace_raw_tp', flags: SLEEPABLE | ATTACH_BTF },
  { sec: 'fentry+', prog: 'tracing', attach: 'trace_fentry', flags: ATTACH_BTF },
  { sec: 'fmod_ret+', prog: 'tracing', attach: 'modify_return', flags: ATTACH_BTF },
  { sec: 'fexit+', prog: 'tracing', attach: 'trace_fexit', flags: ATTACH_BTF },
  { sec: 'fentry.s+', prog: 'tracing', attach: 'trace_fentry', flags: SLEEPABLE | ATTACH_BTF },
  { sec: 'fmod_ret.s+', prog: 'tracing', attach: 'modify_return', flags: SLEEPABLE | ATTACH_BTF },
  { sec: 'fexit.s+', prog: 'tracing', attach: 'trace_fexit', flags: SLEEPABLE | ATTACH_BTF },
  { sec: 'fsession+', prog: 'tracing', attach: 'trace_fsession', flags: ATTACH_BTF },
  { sec: 'fsession.s+', prog: 'tracing', attach: 'trace_fsession', flags: SLEEPABLE | ATTACH_BTF },
  { sec: 'fsession.multi+', prog: 'tracing', attach: 'trace_fsession_multi', flags: 0 },
  { sec: 'fsession.multi.s+', prog: 'tracing', attach: 'trace_fsession_multi', flags: SLEEPABLE },
  { sec: 'fentry.multi+', prog: 'tracing', attach: 'trace_fentry_multi', flags: 0 },
  { sec: 'fexit.multi+', prog: 'tracing', attach: 'trace_fexit_multi', flags: 0 },
  { sec: 'fentry.multi.s+', prog: 'tracing', attach: 'trace_fentry_multi', flags: SLEEPABLE },
  { sec: 'fexit.multi.s+', prog: 'tracing', attach: 'trace_fexit_multi', flags: SLEEPABLE },
  { sec: 'freplace+', prog: 'ext', attach: '', flags: ATTACH_BTF },
  { sec: 'lsm+', prog: 'lsm', attach: 'lsm_mac', flags: ATTACH_BTF },
  { sec: 'lsm.s+', prog: 'lsm', attach: 'lsm_mac', flags: SLEEPABLE | ATTACH_BTF },
  { sec: 'lsm_cgroup+', prog: 'lsm', attach: 'lsm_cgroup', flags: ATTACH_BTF },
  { sec: 'iter+', prog: 'tracing', attach: 'trace_iter', flags: ATTACH_BTF },
  { sec: 'iter.s+', prog: 'tracing', attach: 'trace_iter', flags: SLEEPABLE | ATTACH_BTF },
  { sec: 'syscall', prog: 'syscall', attach: '', flags: SLEEPABLE },
  { sec: 'xdp.frags/devmap', prog: 'xdp', attach: 'xdp_devmap', flags: XDP_FRAGS },
  { sec: 'xdp/devmap', prog: 'xdp', attach: 'xdp_devmap', flags: 0 },
  { sec: 'xdp.frags/cpumap', prog: 'xdp', attach: 'xdp_cpumap', flags: XDP_FRAGS },
  { sec: 'xdp/cpumap', prog: 'xdp', attach: 'xdp_cpumap', flags: 0 },
  { sec: 'xdp.frags', prog: 'xdp', attach: 'xdp', flags: XDP_FRAGS },
  { sec: 'xdp', prog: 'xdp', attach: 'xdp', flags: 0 },
  { sec: 'perf_event', prog: 'perf_event', attach: '', flags: 0 },
  { sec: 'lwt_in', prog: 'lwt_in', attach: '', flags: 0 },
  { sec: 'lwt_out', prog: 'lwt_out', attach: '', flags: 0 },
  { sec: 'lwt_xmit', prog: 'lwt_xmit', attach: '', flags: 0 },
  { sec: 'lwt_seg6local', prog: 'lwt_seg6local', attach: '', flags: 0 },
  { sec: 'sockops', prog: 'sock_ops', attach: 'cgroup_sock_ops', flags: 0 },
  { sec: 'sk_skb/stream_parser', prog: 'sk_skb', attach: 'sk_skb_stream_parser', flags: 0 },
  { sec: 'sk_skb/stream_verdict', prog: 'sk_skb', attach: 'sk_skb_stream_verdict', flags: 0 },
  { sec: 'sk_skb/verdict', prog: 'sk_skb', attach: 'sk_skb_verdict', flags: 0 },
  { sec: 'sk_skb', prog: 'sk_skb', attach: '', flags: 0 },
  { sec: 'sk_msg', prog: 'sk_msg', attach: 'sk_msg_verdict', flags: 0 },
  { sec: 'lirc_mode2', prog: 'lirc_mode2', attach: 'lirc_mode2', flags: 0 },
  { sec: 'flow_dissector', prog: 'flow_dissector', attach: 'flow_dissector', flags: 0 },
  { sec: 'cgroup_skb/ingress', prog: 'cgroup_skb', attach: 'cgroup_inet_ingress', flags: 0 },
  { sec: 'cgroup_skb/egress', prog: 'cgroup_skb', attach: 'cgroup_inet_egress', flags: 0 },
  { sec: 'cgroup/skb', prog: 'cgroup_skb', attach: '', flags: 0 },
  { sec: 'cgroup/sock_create', prog: 'cgroup_sock', attach: 'cgroup_inet_sock_create', flags: 0 },
  { sec: 'cgroup/sock_release', prog: 'cgroup_sock', attach: 'cgroup_inet_sock_release', flags: 0 },
  { sec: 'cgroup/sock', prog: 'cgroup_sock', attach: 'cgroup_inet_sock_create', flags: 0 },
  { sec: 'cgroup/post_bind4', prog: 'cgroup_sock', attach: 'cgroup_inet4_post_bind', flags: 0 },
  { sec: 'cgroup/post_bind6', prog: 'cgroup_sock', attach: 'cgroup_inet6_post_bind', flags: 0 },
  { sec: 'cgroup/bind4', prog: 'cgroup_sock_addr', attach: 'cgroup_inet4_bind', flags: 0 },
  { sec: 'cgroup/bind6', prog: 'cgroup_sock_addr', attach: 'cgroup_inet6_bind', flags: 0 },
  { sec: 'cgroup/connect4', prog: 'cgroup_sock_addr', attach: 'cgroup_inet4_connect', flags: 0 },
  { sec: 'cgroup/connect6', prog: 'cgroup_sock_addr', attach: 'cgroup_inet6_connect', flags: 0 },
  { sec: 'cgroup/connect_unix', prog: 'cgroup_sock_addr', attach: 'cgroup_unix_connect', flags: 0 },
  { sec: 'cgroup/sendmsg4', prog: 'cgroup_sock_addr', attach: 'cgroup_udp4_sendmsg', flags: 0 },
  { sec: 'cgroup/sendmsg6', prog: 'cgroup_sock_addr', attach: 'cgroup_udp6_sendmsg', flags: 0 },
  { sec: 'cgroup/sendmsg_unix', prog: 'cgroup_sock_addr', attach: 'cgroup_unix_sendmsg', flags: 0 },
  { sec: 'cgroup/recvmsg4', prog: 'cgroup_sock_addr', attach: 'cgroup_udp4_recvmsg', flags: 0 },
  { sec: 'cgroup/recvmsg6', prog: 'cgroup_sock_addr', attach: 'cgroup_udp6_recvmsg', flags: 0 },
  { sec: 'cgroup/recvmsg_unix', prog: 'cgroup_sock_addr', attach: 'cgroup_unix_recvmsg', flags: 0 },
  { sec: 'cgroup/getpeername4', prog: 'cgroup_sock_addr', attach: 'cgroup_inet4_getpeername', flags: 0 },
  { sec: 'cgroup/getpeername6', prog: 'cgroup_sock_addr', attach: 'cgroup_inet6_getpeername', flags: 0 },
  { sec: 'cgroup/getpeername_unix', prog: 'cgroup_sock_addr', attach: 'cgroup_unix_getpeername', flags: 0 },
  { sec: 'cgroup/getsockname4', prog: 'cgroup_sock_addr', attach: 'cgroup_inet4_getsockname', flags: 0 },
  { sec: 'cgroup/getsockname6', prog: 'cgroup_sock_addr', attach: 'cgroup_inet6_getsockname', flags: 0 },
  { sec: 'cgroup/getsockname_unix', prog: 'cgroup_sock_addr', attach: 'cgroup_unix_getsockname', flags: 0 },
  { sec: 'cgroup/sysctl', prog: 'cgroup_sysctl', attach: 'cgroup_sysctl', flags: 0 },
  { sec: 'cgroup/getsockopt', prog: 'cgroup_sockopt', attach: 'cgroup_getsockopt', flags: 0 },
  { sec: 'cgroup/setsockopt', prog: 'cgroup_sockopt', attach: 'cgroup_setsockopt', flags: 0 },
  { sec: 'cgroup/dev', prog: 'cgroup_device', attach: 'cgroup_device', flags: 0 },
  { sec: 'struct_ops+', prog: 'struct_ops', attach: '', flags: 0 },
  { sec: 'struct_ops.s+', prog: 'struct_ops', attach: '', flags: SLEEPABLE },
  { sec: 'sk_lookup', prog: 'sk_lookup', attach: 'sk_lookup', flags: 0 },
  { sec: 'netfilter', prog: 'netfilter', attach: 'netfilter', flags: 0 },
];
export const BPF_F_SLEEPABLE = 1 << 4;
export const BPF_F_XDP_HAS_FRAGS = 1 << 5;

export interface SectionInfo {
  progType: number;
  expectedAttachType: number;
  progFlags: number;
  /** For ATTACH_BTF sections: the kernel function/type to resolve on the host (text after '/'). */
  attachTarget?: string;
  /** True for ATTACH_BTF sections: attach_btf_id must be resolved on the host. */
  needsAttachBtf: boolean;
  usdt: boolean;
}

/** 'name+' matches the name itself or name/...; anything else matches exactly (libbpf's sec_def_matches). */
const MATCHERS = ROWS.map((r) => {
  const plus = r.sec.endsWith('+');
  const base = plus ? r.sec.slice(0, -1) : r.sec;
  return { row: r, base, slash: `${base}/`, plus };
});

/** Resolve a section name the way libbpf (1.x, strict mode) does; undefined when no rule matches. */
export function sectionInfo(name: string): SectionInfo | undefined {
  const row = MATCHERS.find((m) => name === m.base || (m.plus && name.startsWith(m.slash)))?.row;
  if (!row) return undefined;
  const progType = PROG_TYPE.get(row.prog);
  const attach = row.attach ? ATTACH_TYPE.get(row.attach) : 0;
  if (progType === undefined || attach === undefined) return undefined;
  let progFlags = 0;
  if (row.flags & SLEEPABLE) progFlags |= BPF_F_SLEEPABLE;
  if (row.flags & XDP_FRAGS) progFlags |= BPF_F_XDP_HAS_FRAGS;
  const needsAttachBtf = (row.flags & ATTACH_BTF) !== 0;
  const slash = name.indexOf('/');
  const info: SectionInfo = { progType, expectedAttachType: attach, progFlags, needsAttachBtf, usdt: (row.flags & USDT) !== 0 };
  if (needsAttachBtf && slash >= 0) info.attachTarget = name.slice(slash + 1);
  return info;
}

/**
 * A user rule for sections libbpf's table does not know (or names differently), as given to
 * `plan --section-type <pattern>=<prog_type>[:<attach_type>]`; '*' in the pattern matches any run.
 */
export interface SectionOverride {
  pattern: string;
  progType: number;
  expectedAttachType: number;
}

export function parseSectionOverride(spec: string): SectionOverride | undefined {
  const m = /^([^=]+)=([a-z0-9_]+)(?::([a-z0-9_]+))?$/.exec(spec);
  const [, pattern, prog, attachName] = m ?? [];
  if (pattern === undefined || prog === undefined) return undefined;
  const progType = PROG_TYPE.get(prog);
  const attach = attachName === undefined ? 0 : ATTACH_TYPE.get(attachName);
  if (progType === undefined || attach === undefined) return undefined;
  return { pattern, progType, expectedAttachType: attach };
}

/** The first override whose pattern matches the section, as SectionInfo (no flags, no BTF attach). */
export function overrideInfo(name: string, overrides: readonly SectionOverride[]): SectionInfo | undefined {
  const o = overrides.find((x) => globMatch(x.pattern, name));
  return o && { progType: o.progType, expectedAttachType: o.expectedAttachType, progFlags: 0, needsAttachBtf: false, usdt: false };
}

/** The conventional section names, for error messages. */
export function knownSections(): string[] {
  return ROWS.map((r) => r.sec);
}
