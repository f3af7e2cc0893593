/**
 * BPF links (include/uapi/linux/bpf.h): BPF_LINK_CREATE attaches a program and returns a link fd; the
 * attachment lives as long as the link (an fd or a bpffs pin). Offsets checked against the host's
 * uapi header: link_create 0 prog_fd, 4 target_fd, 8 attach_type, 12 flags, 16 target_btf_id;
 * link_detach 0 link_fd; link_id 0 (BPF_LINK_GET_FD_BY_ID). struct bpf_link_info: 0 type, 4 id,
 * 8 prog_id, then the per-type union at 16 (tracing: 16 attach_type, 20 target_obj_id, 24 target_btf_id).
 */
import { ATTR_SIZE, bpf, CMD } from './sys.js';
import { Fd } from './fd.js';
import { ERRNO, KernelError } from './errors.js';
import { nextId, objInfo } from './bpf.js';

/** enum bpf_attach_type BPF_LSM_MAC; enum bpf_link_type BPF_LINK_TYPE_TRACING (LSM links are tracing links). */
export const BPF_LSM_MAC = 27;
export const BPF_LINK_TYPE_TRACING = 2;

/** BPF_LINK_CREATE for a program whose attach target was fixed at load (attach_btf_id): LSM, fentry, ... */
export function linkCreate(prog: Fd, attachType: number, what = 'link'): Fd {
  const a = Buffer.alloc(ATTR_SIZE);
  a.writeUInt32LE(prog.value, 0);
  a.writeUInt32LE(attachType, 8);
  return new Fd(bpf(CMD.LINK_CREATE, a.subarray(0, 32)), what);
}

export interface LinkInfo {
  type: number;
  id: number;
  progId: number;
  /** tracing links: the attach type. */
  attachType: number;
}

export function linkInfo(link: Fd): LinkInfo {
  const info = objInfo(link, 48);
  return { type: info.readUInt32LE(0), id: info.readUInt32LE(4), progId: info.readUInt32LE(8), attachType: info.readUInt32LE(16) };
}

/**
 * BPF_LINK_DETACH: detach now, whoever else holds the link. False when the link type has no detach
 * operation (EOPNOTSUPP; EINVAL on kernels without the command): then it goes with its last reference.
 */
export function linkDetach(link: Fd): boolean {
  const a = Buffer.alloc(8);
  a.writeUInt32LE(link.value, 0);
  try {
    bpf(CMD.LINK_DETACH, a.subarray(0, 4));
    return true;
  } catch (e) {
    if (e instanceof KernelError && (e.errno === ERRNO.EOPNOTSUPP || e.errno === ERRNO.ENOTSUPP || e.errno === ERRNO.EINVAL)) return false;
    throw e;
  }
}

/** Does a link with this id exist now? Walks the ids (BPF_LINK_GET_NEXT_ID): taking an fd would hold it. */
export function linkExists(id: number): boolean {
  return id > 0 && nextId(CMD.LINK_GET_NEXT_ID, id - 1) === id;
}
