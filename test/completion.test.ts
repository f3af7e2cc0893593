/**
 * `bpfseal completion bash|zsh` and `--help` complete enough to be a man page: the command tree the
 * scripts are generated from (`completion <shell> --json`, taken from the commander program itself)
 * must give every command, argument and option a description, every command's --help must show each
 * of its options, and the scripts, sourced in the real shells, must complete commands, subcommands
 * (`log verify`), options, option values and the files after an option that takes one.
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CommandNode } from '../src/cli/completion.js';
import { runCli } from './helpers/cli.js';
import { cleanupTmpDirs, CLI, makeTmpDir } from './helpers/paths.js';

let tree: CommandNode;
let dir: string;
const paths: { path: string[]; node: CommandNode }[] = [];

beforeAll(async () => {
  const r = await runCli(['completion', 'bash', '--json']);
  expect(r.code, r.stderr).toBe(0);
  tree = JSON.parse(r.stdout) as CommandNode;
  const walk = (n: CommandNode, p: string[]) => {
    paths.push({ path: p, node: n });
    for (const c of n.commands) if (c.name !== 'help') walk(c, [...p, c.name]);
  };
  walk(tree, []);
  dir = makeTmpDir('bpfseal-completion-');
  for (const shell of ['bash', 'zsh']) {
    const s = await runCli(['completion', shell]);
    expect(s.code, s.stderr).toBe(0);
    writeFileSync(join(dir, `bpfseal.${shell}`), s.stdout);
  }
});
afterAll(() => cleanupTmpDirs());

describe('--help as a man page', () => {
  it('every command, argument and option has a description (walks the whole commander tree)', () => {
    const missing: string[] = [];
    for (const { path, node } of paths) {
      const where = ['bpfseal', ...path].join(' ');
      if (!node.description.trim()) missing.push(`${where}: command without description`);
      for (const a of node.arguments) if (!a.description.trim()) missing.push(`${where} <${a.name}>: argument without description`);
      for (const o of node.options) if (!o.description.trim()) missing.push(`${where} ${o.flags.join(', ')}: option without help text`);
    }
    expect(missing).toEqual([]);
    // The walk saw the tree: top-level commands, nested ones, and the options of each.
    expect(paths.map((p) => p.path.join(' '))).toEqual(expect.arrayContaining(['verify', 'load', 'log', 'log verify', 'log show', 'completion']));
    expect(paths.length).toBeGreaterThan(20);
    expect(paths.find((p) => p.path.join(' ') === 'verify')!.node.options.flatMap((o) => o.flags)).toEqual(expect.arrayContaining(['--key', '--policy', '--certificate-identity', '--json', '--help']));
  });

  it('`<command> --help` exits 0 and lists each of the command\'s options with its text', async () => {
    for (const { path, node } of paths) {
      const r = await runCli([...path, '--help']);
      expect(r.code, path.join(' ')).toBe(0);
      const text = r.stdout.replace(/\s+/g, ' ');
      for (const o of node.options) {
        expect(r.stdout, `${path.join(' ')} ${o.flags[0]}`).toContain(o.flags[0]);
        expect(text, `${path.join(' ')} ${o.flags[0]}`).toContain(o.description.replace(/\s+/g, ' ').slice(0, 40));
      }
      for (const c of node.commands) expect(r.stdout, `${path.join(' ')} lists ${c.name}`).toContain(c.name);
    }
  });
});

/** Completion candidates bash gives for `words` (the last one is being completed). */
function bashComplete(words: string[]): string[] {
  const script = `source ${join(dir, 'bpfseal.bash')}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _bpfseal; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['--norc', '--noprofile', '-c', script], { cwd: dir, encoding: 'utf8' });
  expect(r.status, r.stderr).toBe(0);
  return r.stdout.split('\n').filter(Boolean);
}

describe('bash completion', () => {
  it('sourcing it registers `complete -F _bpfseal bpfseal`', () => {
    const r = spawnSync('bash', ['--norc', '--noprofile', '-c', `source <(${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} completion bash) && complete -p bpfseal`], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout.trim()).toBe('complete -o filenames -F _bpfseal bpfseal');
  });

  it('completes commands, subcommands, options, choices and files', () => {
    writeFileSync(join(dir, 'release.pub'), '');
    const top = tree.commands.map((c) => c.name);
    expect(bashComplete(['bpfseal', ''])).toEqual(top);
    expect(bashComplete(['bpfseal', 've'])).toEqual(['verify', 'verify-report', 'version']);
    expect(bashComplete(['bpfseal', 'log', 've'])).toEqual(['verify']);
    expect(bashComplete(['bpfseal', 'log', ''])).toEqual(expect.arrayContaining(['verify', 'show', 'prove', 'consistency']));
    expect(bashComplete(['bpfseal', 'verify', '--certificate-i'])).toEqual(['--certificate-identity', '--certificate-identity-regexp']);
    expect(bashComplete(['bpfseal', 'log', 'verify', '--js'])).toEqual(['--json']);
    expect(bashComplete(['bpfseal', 'completion', ''])).toEqual(['bash', 'zsh']);
    // After an option that takes a value: files; the value is skipped when finding the command path.
    expect(bashComplete(['bpfseal', 'verify', '--key', 'rel'])).toEqual(['release.pub']);
    expect(bashComplete(['bpfseal', 'log', '--json', 'pr'])).toEqual(['prove']);
    expect(bashComplete(['bpfseal', 'verify', '--state', 'log', '--p'])).toEqual(['--policy']);
    // A positional that is not a subcommand: files.
    expect(bashComplete(['bpfseal', 'verify', 'rel'])).toEqual(['release.pub']);
  });
});

const zsh = spawnSync('zsh', ['-fc', 'true']).status === 0;

describe('zsh completion', () => {
  it('is a #compdef function file naming every command with its description', async () => {
    const s = (await runCli(['completion', 'zsh'])).stdout;
    expect(s.split('\n')[0]).toBe('#compdef bpfseal');
    for (const c of tree.commands) if (c.name !== 'help') expect(s).toContain(`'${c.name}:${c.description.replace(/\s+/g, ' ').replace(/'/g, `'\\''`)}'`);
    expect(s.match(/\bcase\b/g)?.length).toBe(s.match(/\besac\b/g)?.length);
    expect(s).toContain('compdef _bpfseal bpfseal');
  });

  it.skipIf(!zsh)('sourced in zsh after compinit, registers _bpfseal and offers the right candidates', () => {
    const script = `autoload -U compinit; compinit -u -D; source ${join(dir, 'bpfseal.zsh')}
print -r -- "comp=\${_comps[bpfseal]}"
_describe() { local -a arr; arr=("\${(@P)4}"); print -r -- "\${(j:,:)\${(@)arr%%:*}}"; }
compadd() { print -r -- "\${(j:,:)\${(@P)2}}"; }
_files() { print files; }
t() { words=("$@"); CURRENT=$#; _bpfseal; }
t bpfseal ''
t bpfseal log ''
t bpfseal verify --certificate-i
t bpfseal completion ''
t bpfseal verify --key ''
t bpfseal log --json ''`;
    const r = spawnSync('zsh', ['-f', '-c', script], { cwd: dir, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('comp=_bpfseal');
    expect(lines[1]).toBe(tree.commands.map((c) => c.name).join(','));
    expect(lines[2].split(',')).toEqual(expect.arrayContaining(['verify', 'show', 'prove']));
    expect(lines[3].split(',')).toEqual(expect.arrayContaining(['--certificate-identity', '--certificate-identity-regexp', '--key', '--json']));
    expect(lines[4]).toBe('bash,zsh');
    expect(lines[5]).toBe('files');
    expect(lines[6]).toBe(lines[2]);
  });
});

it('an unknown shell is a usage error naming the choices', async () => {
  const r = await runCli(['completion', 'fish']);
  expect(r.code).toBe(2);
  expect(r.stderr).toMatch(/USAGE_INVALID_ARGUMENT: .*Allowed choices are bash, zsh/);
});
