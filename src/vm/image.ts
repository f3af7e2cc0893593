/**
 * What a kernel file says about itself: the release string in a bzImage's setup header, and the
 * options of a kernel config file. Pure functions over bytes and text.
 */
import { createHash } from 'node:crypto';

/**
 * The release (`uname -r`) of an x86 bzImage. The boot protocol (Documentation/arch/x86/boot.rst)
 * puts "HdrS" at 0x202 and, from protocol 2.00, a pointer to the version string at 0x20E, relative to
 * 0x200; the string starts with the release, e.g. "7.3.4+deb13-cloud-amd64 (debian-kernel@...) #1 SMP".
 * Returns undefined for anything that is not such an image.
 */
export function bzImageRelease(image: Buffer): string | undefined {
  if (image.length < 0x210 || image.readUInt16LE(0x1fe) !== 0xaa55) return undefined;
  if (image.toString('latin1', 0x202, 0x206) !== 'HdrS' || image.readUInt16LE(0x206) < 0x200) return undefined;
  const at = 0x200 + image.readUInt16LE(0x20e);
  if (at >= image.length) return undefined;
  const end = image.indexOf(0, at);
  const text = image.toString('latin1', at, end < 0 ? Math.min(image.length, at + 256) : end);
  const release = text.split(' ')[0];
  return release && /^[0-9][A-Za-z0-9.+~_-]*$/.test(release) ? release : undefined;
}

/** CONFIG_X=value lines of a kernel .config; "# CONFIG_X is not set" is recorded as "n". */
export function parseKernelConfig(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const [, name, value] = /^CONFIG_([A-Za-z0-9_]+)=(.*)$/.exec(line) ?? [];
    if (name !== undefined && value !== undefined) {
      out.set(name, value.replace(/^"(.*)"$/, '$1'));
      continue;
    }
    const unset = /^# CONFIG_([A-Za-z0-9_]+) is not set$/.exec(line)?.[1];
    if (unset !== undefined) out.set(unset, 'n');
  }
  return out;
}

/** sha256:<hex> of a file's bytes: the form attestations use for digests. */
export function sha256Digest(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}
