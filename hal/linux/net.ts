/**
 * Network interfaces from /sys/class/net/IF. The kernel answers some attributes with EINVAL instead of
 * a value while the interface is down (`carrier`, `speed`), which here become `carrier: false` and
 * `speedMbps: null` rather than errors.
 */
import { readFileSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { HalIoError, HalNotFoundError, errnoOf, halErrorFromErrno } from '../errors.js';
import { type NetController, type NetCounterName, type NetInterface, type NetStatus, type OperState, netCounterNames } from '../net.js';
import { LinkMonitor } from './link-monitor.js';

export const defaultNetRoot = '/sys/class/net';

const operStates: readonly OperState[] = ['up', 'down', 'dormant', 'lowerlayerdown', 'notpresent', 'testing', 'unknown'];

class LinuxNetInterface implements NetInterface {
  private readonly dir: string;
  private readonly target: string;

  constructor(
    readonly name: string,
    root: string,
    private readonly links: LinkMonitor,
  ) {
    this.dir = join(root, name);
    this.target = `net:${name}`;
  }

  /** Carrier changes from rtnetlink (RTM_NEWLINK, RTMGRP_LINK) through the controller's LinkMonitor. */
  watch(watcher: (carrier: boolean) => void): () => void {
    // Sync read: the watch starts from the carrier as it is now, so the first event is a change.
    let carrier = false;
    try {
      carrier = readFileSync(join(this.dir, 'carrier'), 'utf8').trim() === '1';
    } catch {
      // EINVAL while down, ENOENT once removed: no carrier.
    }
    return this.links.watch(this.name, carrier, watcher);
  }

  /** The attribute's text, or undefined when the kernel answers EINVAL (no value while down). */
  private async attribute(path: string): Promise<string | undefined> {
    try {
      return (await readFile(join(this.dir, path), 'utf8')).trim();
    } catch (err) {
      if (errnoOf(err) === 'EINVAL') return undefined;
      if (errnoOf(err) === 'ENOENT') {
        throw new HalNotFoundError(`network interface ${this.name}: ${join(this.dir, path)} does not exist (interface removed?)`, {
          target: this.target,
          errno: 'ENOENT',
          cause: err,
        });
      }
      throw halErrorFromErrno(err, `reading ${path}`, this.target);
    }
  }

  private async counter(name: NetCounterName): Promise<number> {
    const text = await this.attribute(join('statistics', name));
    const value = Number(text);
    if (text === undefined || text === '' || !Number.isSafeInteger(value) || value < 0) {
      throw new HalIoError(`network interface ${this.name}: statistics/${name} holds ${JSON.stringify(text)}, not a counter`, {
        target: this.target,
      });
    }
    return value;
  }

  async status(): Promise<NetStatus> {
    const [carrier, operstate, speed, ...counts] = await Promise.all([
      this.attribute('carrier'),
      this.attribute('operstate'),
      this.attribute('speed'),
      ...netCounterNames.map((name) => this.counter(name)),
    ]);
    const counters = Object.fromEntries(netCounterNames.map((name, i) => [name, counts[i] as number])) as Record<NetCounterName, number>;
    const speedValue = speed === undefined ? NaN : Number(speed);
    return {
      name: this.name,
      carrier: carrier === '1',
      operstate: operStates.find((s) => s === operstate) ?? 'unknown',
      speedMbps: Number.isInteger(speedValue) && speedValue > 0 ? speedValue : null,
      counters,
    };
  }
}

export interface LinuxNetOptions {
  /** Default /sys/class/net; tests lay out a fake tree. */
  root?: string;
  /** The iproute2 binary that reports link changes; default `ip`. */
  ipCommand?: string;
}

export class LinuxNetController implements NetController {
  private readonly root: string;
  private readonly links: LinkMonitor;

  constructor(options: LinuxNetOptions = {}) {
    this.root = options.root ?? defaultNetRoot;
    this.links = new LinkMonitor(options.ipCommand);
  }

  async open(name: string): Promise<NetInterface> {
    const target = `net:${name}`;
    if (name === '' || name.includes('/') || name === '.' || name === '..') {
      throw new HalNotFoundError(`${JSON.stringify(name)} is not a network interface name`, { target });
    }
    try {
      await stat(join(this.root, name));
    } catch (err) {
      if (errnoOf(err) === 'ENOENT') {
        throw new HalNotFoundError(`network interface ${name} does not exist (no ${join(this.root, name)})`, { target, errno: 'ENOENT', cause: err });
      }
      throw halErrorFromErrno(err, 'open', target);
    }
    return new LinuxNetInterface(name, this.root, this.links);
  }
}
