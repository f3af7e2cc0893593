/**
 * What replay needs from a kernel. Two implementations: the real one (bpf(2), this file) and the
 * model kernel (model.ts) for unprivileged dry runs. Handles own kernel objects and close themselves.
 */
import { rmSync } from 'node:fs';
import { mapAttrs, type MapAttrs } from '../bpf/spec.js';
import * as sys from '../kernel/bpf.js';
import { Fd } from '../kernel/fd.js';

export interface Handle {
  close(): void;
  readonly closed: boolean;
}

export interface MapCreateSpec extends MapAttrs {
  name: string;
  btf?: Handle;
  inner?: Handle;
}

/**
 * A program load as replay asks for it: kernel/bpf.ts's BPF_PROG_LOAD attributes (one list of them),
 * with this backend's handles in place of descriptors, the BTF and CO-RE records always given, and
 * none of the binding's log and fd_array_cnt controls.
 */
export interface ProgLoadSpec extends Omit<sys.ProgLoadAttr, 'btfFd' | 'fdArray' | 'logLevel' | 'fdArrayCnt' | 'funcInfo' | 'lineInfo' | 'coreRelos' | 'attachBtfId'>,
  Required<Pick<sys.ProgLoadAttr, 'funcInfo' | 'lineInfo' | 'coreRelos' | 'attachBtfId'>> {
  fdArray: Handle[];
  btf?: Handle;
}

export interface ObjectInfo {
  id: number;
  tag?: string;
}

export interface KernelBackend {
  readonly kind: 'kernel' | 'model';
  btfLoad(btf: Buffer): Handle;
  mapCreate(m: MapCreateSpec): Handle;
  mapUpdate(map: Handle, key: Buffer, value: Buffer): void;
  mapFreeze(map: Handle): void;
  progLoad(p: ProgLoadSpec): Handle;
  info(h: Handle, what: 'map' | 'prog'): ObjectInfo;
  pin(h: Handle, path: string): void;
  unpin(path: string): void;
}

const asFd = (h: Handle): Fd => {
  if (!(h instanceof Fd)) throw new Error('internal: handle from another backend');
  return h;
};

export function realKernel(): KernelBackend {
  return {
    kind: 'kernel',
    btfLoad: (btf) => sys.btfLoad(btf),
    mapCreate: (m) => sys.mapCreate({
      ...mapAttrs(m), name: m.name, btfFd: m.btf ? asFd(m.btf) : undefined, innerMapFd: m.inner ? asFd(m.inner) : undefined,
    }),
    mapUpdate: (map, key, value) => sys.mapUpdate(asFd(map), key, value),
    mapFreeze: (map) => sys.mapFreeze(asFd(map)),
    progLoad: ({ btf, fdArray, ...attrs }) => sys.progLoad({ ...attrs, btfFd: btf ? asFd(btf) : undefined, fdArray: fdArray.map(asFd) }),
    info: (h, what) => {
      if (what === 'prog') {
        const i = sys.progInfo(asFd(h));
        return { id: i.id, tag: i.tag };
      }
      return { id: sys.mapInfo(asFd(h)).id };
    },
    pin: (h, path) => sys.objPin(asFd(h), path),
    unpin: (path) => rmSync(path, { force: true }),
  };
}
