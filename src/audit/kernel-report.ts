/**
 * `audit --kernel`: every program loaded in the kernel now, attributed to the host-log load that put it
 * there, then to its code (src/audit/kernel/: inventory, records, attribution, frozen, accept, report).
 * This file is the entry point other parts call (the CLI, the demo, enforcement's denials).
 */
import type { AttestationAudit } from './attestations.js';
import { auditKernel, type KernelAuditOptions, type KernelReport } from './kernel/report.js';

export type { KernelReport, KernelAuditOptions, HostLogSummary } from './kernel/report.js';
export type { AttributedProgram, ProgramStatus, Evidence, RecordRef } from './kernel/attribution.js';
export type { AcceptRule } from './kernel/accept.js';

export function kernelAudit(attestations: AttestationAudit, hostLog?: string, opts: KernelAuditOptions = {}): KernelReport {
  return auditKernel(attestations, hostLog, opts);
}
