/**
 * What the kernel says about a loaded program, beyond bpf.ts's progInfo: the map ids bound to it, when
 * it was loaded and by whom. One BPF_OBJ_GET_INFO_BY_FD call (attr: 0 bpf_fd, 4 info_len, 8 info)
 * with struct bpf_prog_info (include/uapi/linux/bpf.h):
 *   0 type, 4 id, 8 tag[8], 40 load_time (u64, ns since boot: ktime_get_boottime_ns),
 *   48 created_by_uid, 52 nr_map_ids (in: room in map_ids; out: how many are bound), 56 map_ids (u64
 *   pointer to u32[]), 64 name[16].
 * The kernel copies at most the room we give and reports the real count, so a program bound to more
 * maps than the first guess is asked once more with enough room.
 */
import { readInput } from '../fsx/read.js';
import { addressOf, bpf, CMD } from './sys.js';
import type { Fd } from './fd.js';

/** sizeof(struct bpf_prog_info) on 6.18 is 232; a larger zeroed buffer is accepted (zero tail). */
const PROG_INFO_SIZE = 232;
const FIRST_GUESS = 16;

export interface ProgDetails {
  type: number;
  id: number;
  tag: string;
  name: string;
  /** Map ids bound to the program (its used_maps), in the kernel's order. */
  mapIds: number[];
  /** load_time: nanoseconds since boot (CLOCK_BOOTTIME). */
  loadTimeNs: bigint;
  /** created_by_uid. */
  uid: number;
}

function infoCall(fd: Fd, room: number): { info: Buffer; ids: Buffer } {
  const info = Buffer.alloc(PROG_INFO_SIZE);
  const ids = Buffer.alloc(Math.max(4, room * 4));
  info.writeUInt32LE(room, 52);
  info.writeBigUInt64LE(room ? addressOf(ids) : 0n, 56);
  const a = Buffer.alloc(16);
  a.writeUInt32LE(fd.value, 0);
  a.writeUInt32LE(info.length, 4);
  a.writeBigUInt64LE(addressOf(info), 8);
  bpf(CMD.OBJ_GET_INFO_BY_FD, a, [info, ids]);
  return { info, ids };
}

function nameAt(info: Buffer, off: number, len: number): string {
  const end = info.indexOf(0, off);
  return info.toString('latin1', off, end < 0 || end > off + len ? off + len : end);
}

export function progDetails(fd: Fd): ProgDetails {
  let { info, ids } = infoCall(fd, FIRST_GUESS);
  let n = info.readUInt32LE(52);
  if (n > FIRST_GUESS) {
    ({ info, ids } = infoCall(fd, n));
    n = Math.min(n, info.readUInt32LE(52));
  }
  const mapIds: number[] = [];
  for (let i = 0; i < n; i++) mapIds.push(ids.readUInt32LE(i * 4));
  return {
    type: info.readUInt32LE(0), id: info.readUInt32LE(4), tag: info.subarray(8, 16).toString('hex'), name: nameAt(info, 64, 16),
    mapIds, loadTimeNs: info.readBigUInt64LE(40), uid: info.readUInt32LE(48),
  };
}

/** Wall-clock time of boot in ms (now minus /proc/uptime, 10 ms resolution), to place load_time. */
export function bootTimeMs(): number | undefined {
  try {
    const up = Number(readInput('/proc/uptime', { kind: 'key' }).toString('latin1').split(' ')[0]);
    return Number.isFinite(up) ? Date.now() - up * 1000 : undefined;
  } catch {
    return undefined;
  }
}

/** load_time as an ISO time, given the boot time; undefined when the boot time is unknown. */
export function loadTimeIso(loadTimeNs: bigint, bootMs: number | undefined): string | undefined {
  if (bootMs === undefined) return undefined;
  return new Date(Math.round(bootMs + Number(loadTimeNs / 1000n) / 1000)).toISOString();
}
