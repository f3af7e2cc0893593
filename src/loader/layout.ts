/**
 * Byte layouts the loader program uses: the union bpf_attr variants it fills (offsets from
 * include/uapi/linux/bpf.h, checked against the kernel's BTF: shared/facts/kernel.md), the loader's
 * context (what user space passes to BPF_PROG_RUN and reads back), the helper ids, and the limits a
 * plan must fit to become a loader.
 */

/** BPF_FUNC_* helper ids (uapi ___BPF_FUNC_MAPPER). */
export const HELPER = { sys_bpf: 166, btf_find_by_name_kind: 167, sys_close: 168, kallsyms_lookup_name: 179 } as const;

export const CMD = { MAP_CREATE: 0, MAP_UPDATE_ELEM: 2, PROG_LOAD: 5, BTF_LOAD: 18, MAP_FREEZE: 22 } as const;

/** BTF kinds for bpf_btf_find_by_name_kind. */
export const BTF_KIND = { TYPEDEF: 8, FUNC: 12, VAR: 14 } as const;

export const ENOENT = 2;
export const EOPNOTSUPP = 95;

/** BPF_BTF_LOAD: 0 btf, 8 btf_log_buf, 16 btf_size, 20 btf_log_size, 24 btf_log_level. */
export const BTF_LOAD = { size: 28, btf: 0, logBuf: 8, btfSize: 16, logSize: 20, logLevel: 24 } as const;

/** BPF_MAP_CREATE, up to map_extra (attr size 72: every kernel bpfseal supports knows these). */
export const MAP_CREATE = {
  size: 72, mapType: 0, keySize: 4, valueSize: 8, maxEntries: 12, mapFlags: 16, innerMapFd: 20, numaNode: 24, mapName: 28,
  btfFd: 48, btfKeyTypeId: 52, btfValueTypeId: 56, mapExtra: 64,
} as const;

/** Map element commands: 0 map_fd, 8 key, 16 value, 24 flags. */
export const MAP_ELEM = { size: 32, mapFd: 0, key: 8, value: 16, flags: 24 } as const;

/** BPF_MAP_FREEZE: 0 map_fd. */
export const MAP_FREEZE = { size: 4, mapFd: 0 } as const;

/** BPF_PROG_LOAD up to core_relo_rec_size (140): no fd_array_cnt, so kernels from 6.x take it. */
export const PROG_LOAD = {
  size: 140, progType: 0, insnCnt: 4, insns: 8, license: 16, logLevel: 24, logSize: 28, logBuf: 32, kernVersion: 40, progFlags: 44,
  progName: 48, expectedAttachType: 68, progBtfFd: 72, funcInfoRecSize: 76, funcInfo: 80, funcInfoCnt: 88, lineInfoRecSize: 92,
  lineInfo: 96, lineInfoCnt: 104, attachBtfId: 108, attachBtfObjFd: 112, coreReloCnt: 116, fdArray: 120, coreRelos: 128, coreReloRecSize: 136,
} as const;

/**
 * The loader's context (BPF_PROG_RUN ctx_in; the kernel copies it back after the run):
 *   0 u32 size, 4 u32 flags (0), 8 u32 log_level, 12 u32 log_size, 16 u64 log_buf (a user address)  [in]
 *   24 s32 error (negative errno of the failed step), 28 u32 step (1-based), 32 u32 done marker   [out]
 *   40 u32 fds[]: BTF, then maps in plan order, then programs in plan order                       [out]
 *   then host inputs, 8-aligned: a u32 max_entries per map sized by the host, and the value of each
 *   .kconfig map (value_size rounded up to 8)                                                      [in]
 */
export const CTX = { size: 0, flags: 4, logLevel: 8, logSize: 12, logBuf: 16, error: 24, step: 28, done: 32, fds: 40 } as const;

/** Written at CTX.done when every step succeeded. */
export const DONE_MARKER = 0x600d_600d;

export const LIMITS = {
  /** An array map value is at most KMALLOC_MAX_SIZE (4 MiB with 4 KiB pages: array_map_alloc_check). */
  blobBytes: 4 << 20,
  /** The loader reads its context with 16-bit offsets from r6 (and the kernel caps ctx at U16_MAX). */
  ctxBytes: 32760,
  /** BPF_COMPLEXITY_LIMIT_INSNS for privileged programs. */
  insns: 1_000_000,
} as const;
