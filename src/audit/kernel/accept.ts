/**
 * Accepting programs that other tools load on purpose (systemd's cgroup filters, for example): a rule
 * names a program name pattern, a program type pattern, or both (shell-style * and ?, like policy
 * `plans`), with a reason. From the policy (`kernelAudit.accept`) or the command line
 * (`--accept <name>`, `--accept name:<pattern>`, `--accept type:<pattern>`, joined with ',' for both).
 * An accepted program is reported as `accepted`, with the rule, the reason and the status it would
 * have had; it is never hidden. Only `known-code` and `unattested` programs can be accepted: a
 * `modified` bpfseal load is tampering with something bpfseal vouched for, and no rule excuses it.
 */
import { BpfsealError } from '../../errors.js';
import { globMatch } from '../../glob.js';
import { STATUS_CODE, type AttributedProgram } from './attribution.js';

export interface AcceptRule {
  name?: string;
  type?: string;
  reason: string;
  /** Where the rule comes from, as shown in reports: `policy <file>` or `--accept <value>`. */
  source: string;
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: a pattern with control characters is refused
const PATTERN = /^[^\u0000-\u001f\u007f/]{1,255}$/;

/** One `--accept` value. */
export function parseAcceptFlag(v: string): AcceptRule {
  const rule: AcceptRule = { reason: `accepted on the command line (--accept ${v})`, source: `--accept ${v}` };
  const parts = v.includes(':') ? v.split(',') : [`name:${v}`];
  for (const part of parts) {
    const [, field, pattern] = /^(name|type):(.*)$/.exec(part) ?? [];
    if (field === undefined || pattern === undefined || !PATTERN.test(pattern) || rule[field as 'name' | 'type'] !== undefined) {
      throw new BpfsealError('usage', 'USAGE_ACCEPT', `--accept ${v}: expected a program name pattern, name:<pattern>, type:<pattern>, or both joined with ',' (type:cgroup_skb,name:sd_*)`);
    }
    rule[field as 'name' | 'type'] = pattern;
  }
  return rule;
}

export function matchRule(p: { name: string; type: string }, rules: readonly AcceptRule[]): AcceptRule | undefined {
  return rules.find((r) => (r.name === undefined || globMatch(r.name, p.name)) && (r.type === undefined || globMatch(r.type, p.type)));
}

const describe = (r: AcceptRule) => [r.name !== undefined ? `name ${r.name}` : '', r.type !== undefined ? `type ${r.type}` : ''].filter(Boolean).join(', ');

/** Mark known-code and unattested programs that a rule accepts. */
export function applyAccept(programs: AttributedProgram[], rules: readonly AcceptRule[]): void {
  if (!rules.length) return;
  for (const p of programs) {
    if (p.status !== 'known-code' && p.status !== 'unattested') continue;
    const r = matchRule(p, rules);
    if (!r) continue;
    p.accepted = { reason: r.reason, rule: `${describe(r)} (${r.source})`, status: p.status };
    p.status = 'accepted';
    p.code = STATUS_CODE.accepted;
  }
}
