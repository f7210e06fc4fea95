/**
 * The netfilter rules of before mode, per service port and address family:
 *
 *   -p tcp --dport PORT --syn -m mark --mark BIT/BIT        -j REJECT --reject-with tcp-reset
 *   -p tcp --dport PORT --syn -m mark --mark 0x0/BIT|BYPASS -j NFQUEUE --queue-num N [--queue-bypass]
 *
 * inserted at the top of INPUT in one iptables-restore transaction, tagged with a comment naming the
 * port, so that rules left by a crashed run are found and replaced on the next start; and the
 * nftables table of nftables.ts, whose chain sets the BYPASS bit on SYNs the kernel lets through by
 * itself (the firmware's liveness lapsed, or a reusable verdict is held), created before the rules and
 * deleted after them. Both are removed on every way out of the process: close, exit (uncaught errors
 * included), and SIGTERM / SIGINT / SIGHUP when nobody else handles them.
 */
import { HandcheckError, type HandcheckErrorOptions } from '../../config/errors.js';
import { commandDetail, isPermissionProblem, runCommand, runCommandSync } from './commands.js';
import { installTable, removeTable, removeTableSync } from './nftables.js';

/** An iptables command failed; `command` is the one that did. */
export class IptablesError extends HandcheckError {
  readonly command: string;

  constructor(command: string, message: string, options: HandcheckErrorOptions = {}) {
    super('ERR_IPTABLES', message, options);
    this.command = command;
  }
}

export type IpFamily = 4 | 6;

/** Which iptables binaries to run: the system default, or an explicit backend. */
export type IptablesVariant = 'default' | 'nft' | 'legacy';

export interface SynRuleSpec {
  service: string;
  port: number;
  queue: number;
  /** Without --queue-bypass: SYNs are dropped while no process listens on the queue. */
  failClosed: boolean;
  /** The mark bit of an abnormal verdict; other bits of the mark are left alone. */
  markBit: number;
  /** The mark bit the nftables chain sets on SYNs that skip the queue. */
  bypassBit: number;
  /** Families to install for, each with its destination address (undefined: any address). */
  targets: ReadonlyArray<{ family: IpFamily; destination: string | undefined }>;
  variant?: IptablesVariant;
}

/** Default backend from HANDCHECK_IPTABLES (`nft` or `legacy`), else whatever `iptables` points to. */
export function iptablesVariantFromEnv(env: NodeJS.ProcessEnv = process.env): IptablesVariant {
  const value = env.HANDCHECK_IPTABLES;
  return value === 'nft' || value === 'legacy' ? value : 'default';
}

function binary(family: IpFamily, variant: IptablesVariant, restore: boolean): string {
  const base = family === 4 ? 'iptables' : 'ip6tables';
  const suffix = variant === 'default' ? '' : `-${variant}`;
  return `${base}${suffix}${restore ? '-restore' : ''}`;
}

/** Comment tag of every rule for `port`; the service name is only for people reading the rules. */
function tagPrefix(port: number): string {
  return `handcheck:${port}:`;
}

function tag(port: number, service: string): string {
  return `${tagPrefix(port)}${service.replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 64)}`;
}

/** Lines of `iptables -S INPUT` that carry the tag of `port`. */
export function taggedRules(listing: string, port: number): string[] {
  const prefix = tagPrefix(port);
  return listing.split('\n').filter((line) => {
    if (!line.startsWith('-A INPUT ')) return false;
    const match = /--comment (?:"([^"]*)"|(\S+))/.exec(line);
    const comment = match?.[1] ?? match?.[2];
    return comment !== undefined && comment.startsWith(prefix);
  });
}

function ruleLines(spec: SynRuleSpec, destination: string | undefined): string[] {
  const hex = `0x${spec.markBit.toString(16)}`;
  const either = `0x${(spec.markBit | spec.bypassBit).toString(16)}`;
  const match = `-p tcp${destination ? ` -d ${destination}` : ''} --dport ${spec.port} --syn`;
  const comment = `-m comment --comment ${tag(spec.port, spec.service)}`;
  const bypass = spec.failClosed ? '' : ' --queue-bypass';
  // Each line goes to the top of INPUT, so the REJECT rule, inserted last, is evaluated first.
  return [
    `-I INPUT 1 ${match} -m mark --mark 0x0/${either} ${comment} -j NFQUEUE --queue-num ${spec.queue}${bypass}`,
    `-I INPUT 1 ${match} -m mark --mark ${hex}/${hex} ${comment} -j REJECT --reject-with tcp-reset`,
  ];
}

function transaction(lines: string[]): string {
  return `*filter\n${lines.join('\n')}\nCOMMIT\n`;
}

function deleteLines(listing: string, port: number): string[] {
  return taggedRules(listing, port).map((line) => `-D${line.slice(2)}`);
}

function commandError(command: string, err: unknown, what: string): IptablesError {
  if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
    return new IptablesError(command, `${command} not found: ${what} needs the Debian package iptables`, { cause: err });
  }
  const detail = commandDetail(err);
  const permission = isPermissionProblem(detail) ? '; this needs CAP_NET_ADMIN' : '';
  return new IptablesError(command, `${command} failed to ${what}: ${detail}${permission}`, { cause: err });
}

function run(command: string, args: string[], input: string | undefined, what: string): Promise<string> {
  return runCommand(command, args, input, what, commandError);
}

function runSync(command: string, args: string[], input: string | undefined, what: string): string {
  return runCommandSync(command, args, input, what, commandError);
}

const active = new Set<SynRules>();
let guarded = false;
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

function removeAllSync(): void {
  for (const rules of active) {
    try {
      rules.removeSync();
    } catch (err) {
      process.stderr.write(`handcheck: ${err instanceof Error ? err.message : String(err)}\n`);
    }
  }
}

/**
 * A signal with no other listener would have killed the process without running any JavaScript: take
 * the rules out, then let the signal do what it would have done. When the application listens too, it
 * owns the shutdown (closing its gates removes the rules), and `exit` is the backstop.
 */
function onSignal(signal: NodeJS.Signals): void {
  if (process.listenerCount(signal) > 1) return;
  removeAllSync();
  for (const s of SIGNALS) process.removeListener(s, onSignal);
  process.kill(process.pid, signal);
}

function guard(rules: SynRules): void {
  active.add(rules);
  if (guarded) return;
  guarded = true;
  process.on('exit', removeAllSync);
  for (const signal of SIGNALS) process.on(signal, onSignal);
}

function unguard(rules: SynRules): void {
  active.delete(rules);
  if (active.size > 0 || !guarded) return;
  guarded = false;
  process.removeListener('exit', removeAllSync);
  for (const signal of SIGNALS) process.removeListener(signal, onSignal);
}

export interface InstallResult {
  /** Rules for the same port found from an earlier run and deleted. */
  replaced: number;
  /** Whether an earlier run's nftables table for the port was there and replaced. */
  replacedTable: boolean;
}

/** The REJECT and NFQUEUE rules and the nftables table of one before-mode service. */
export class SynRules {
  readonly spec: Readonly<SynRuleSpec>;
  private installed = false;
  /** install() and remove() run one after the other, so a remove issued mid-install removes what it put in. */
  private last: Promise<unknown> = Promise.resolve();

  constructor(spec: SynRuleSpec) {
    this.spec = Object.freeze({ ...spec, targets: [...spec.targets] });
  }

  /** Replaces the table and any rules tagged with this port (a crashed run's) with this service's, atomically per family. */
  install(): Promise<InstallResult> {
    const next = this.last.then(() => this.doInstall(), () => this.doInstall());
    this.last = next.catch(() => undefined);
    return next;
  }

  /** Deletes every rule tagged with this port, then the port's table. Idempotent. */
  remove(): Promise<void> {
    const next = this.last.then(() => this.doRemove(), () => this.doRemove());
    this.last = next.catch(() => undefined);
    return next;
  }

  private async doInstall(): Promise<InstallResult> {
    let replaced = 0;
    guard(this);
    this.installed = true;
    let replacedTable = false;
    try {
      ({ replaced: replacedTable } = await installTable({
        port: this.spec.port,
        comment: tag(this.spec.port, this.spec.service),
        failClosed: this.spec.failClosed,
        bypassBit: this.spec.bypassBit,
        targets: this.spec.targets,
      }));
      for (const { family, destination } of this.spec.targets) {
        const variant = this.spec.variant ?? 'default';
        const list = binary(family, variant, false);
        const listing = await run(list, ['-w', '-S', 'INPUT'], undefined, `list the INPUT chain for port ${this.spec.port}`);
        const stale = deleteLines(listing, this.spec.port);
        replaced += stale.length;
        const restore = binary(family, variant, true);
        const lines = [...stale, ...ruleLines(this.spec, destination)];
        await run(restore, ['-w', '--noflush'], transaction(lines), `install the before-mode rules for port ${this.spec.port}`);
      }
    } catch (err) {
      try {
        this.removeSync();
      } catch {
        // What failed first says more than what failed cleaning up after it.
      }
      throw err;
    }
    return { replaced, replacedTable };
  }

  private async doRemove(): Promise<void> {
    if (!this.installed) return;
    this.installed = false;
    try {
      for (const { family } of this.spec.targets) {
        const variant = this.spec.variant ?? 'default';
        const listing = await run(binary(family, variant, false), ['-w', '-S', 'INPUT'], undefined, `list the INPUT chain for port ${this.spec.port}`);
        const lines = deleteLines(listing, this.spec.port);
        if (lines.length > 0) {
          await run(binary(family, variant, true), ['-w', '--noflush'], transaction(lines), `remove the before-mode rules for port ${this.spec.port}`);
        }
      }
    } finally {
      try {
        await removeTable(this.spec.port);
      } finally {
        unguard(this);
      }
    }
  }

  /** As remove(), blocking: for exit paths where no more event-loop turns will run. */
  removeSync(): void {
    if (!this.installed) {
      unguard(this);
      return;
    }
    this.installed = false;
    try {
      for (const { family } of this.spec.targets) {
        const variant = this.spec.variant ?? 'default';
        const listing = runSync(binary(family, variant, false), ['-w', '-S', 'INPUT'], undefined, `list the INPUT chain for port ${this.spec.port}`);
        const lines = deleteLines(listing, this.spec.port);
        if (lines.length > 0) {
          runSync(binary(family, variant, true), ['-w', '--noflush'], transaction(lines), `remove the before-mode rules for port ${this.spec.port}`);
        }
      }
    } finally {
      try {
        removeTableSync(this.spec.port);
      } finally {
        unguard(this);
      }
    }
  }
}
