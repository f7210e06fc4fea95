/**
 * Carrier changes as the kernel announces them, so a lost link withdraws a reusable verdict at once
 * instead of at the next refresh. On a carrier change linkwatch calls netdev_state_change, which sends
 * RTM_NEWLINK to the rtnetlink multicast group RTMGRP_LINK (net/core/rtnetlink.c rtmsg_ifinfo); its
 * ifi_flags carry IFF_LOWER_UP while the carrier is up (net/core/dev.c dev_get_flags: set only when
 * the device runs and netif_carrier_ok). A removed device sends RTM_DELLINK.
 *
 * Node has no AF_NETLINK sockets; this reads them through iproute2's `ip -o monitor link`, which binds
 * a NETLINK_ROUTE socket to RTMGRP_LINK (ip/ipmonitor.c) and prints each message on one line with the
 * flags between < and > (ip/ipaddress.c print_linkinfo, print_link_flags: LOWER_UP), "Deleted " first
 * for RTM_DELLINK. It runs in the firmware's own network namespace. One monitor per controller, started
 * with the first watcher and stopped with the last; where `ip` cannot run, there are no events and the
 * background refresh still reads the carrier from sysfs.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/** One line of `ip -o monitor link`: the interface and whether its carrier is up. */
export function parseLinkLine(line: string): { name: string; carrier: boolean } | undefined {
  const match = /^(Deleted )?\d+: ([^:@\s]+)(?:@[^:\s]+)?: <([^>]*)>/.exec(line);
  if (!match) return undefined;
  return { name: match[2]!, carrier: match[1] === undefined && match[3]!.split(',').includes('LOWER_UP') };
}

type Watcher = (carrier: boolean) => void;

export class LinkMonitor {
  private child: ChildProcess | undefined;
  private readonly watchers = new Map<string, Set<Watcher>>();
  /** The carrier last told per interface, so other RTM_NEWLINK messages (MTU, flags) tell nothing. */
  private readonly last = new Map<string, boolean>();

  constructor(private readonly command: string = 'ip') {}

  /**
   * Calls `watcher` once per carrier change of `name`, from `initial` (the carrier read when the watch
   * began) on. Returns a function that stops the calls.
   */
  watch(name: string, initial: boolean, watcher: Watcher): () => void {
    let set = this.watchers.get(name);
    if (!set) {
      set = new Set();
      this.watchers.set(name, set);
      this.last.set(name, initial);
    }
    set.add(watcher);
    this.start();
    return () => {
      set.delete(watcher);
      if (set.size === 0 && this.watchers.get(name) === set) {
        this.watchers.delete(name);
        this.last.delete(name);
      }
      if (this.watchers.size === 0) this.stop();
    };
  }

  private start(): void {
    if (this.child) return;
    const child = spawn(this.command, ['-o', 'monitor', 'link'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.child = child;
    // Without iproute2 (ENOENT) there are no events; the refresh still reads the carrier.
    child.once('error', () => {
      if (this.child === child) this.child = undefined;
    });
    child.once('exit', () => {
      if (this.child === child) this.child = undefined;
    });
    // The firmware's exit is not held up by the monitor; closing the last watch ends it.
    child.unref();
    const stdout = child.stdout as (NodeJS.ReadableStream & { unref?: () => void }) | null;
    stdout?.unref?.();
    if (stdout) createInterface({ input: stdout }).on('line', (line) => this.onLine(line));
  }

  private onLine(line: string): void {
    const change = parseLinkLine(line);
    if (!change || this.last.get(change.name) === undefined || this.last.get(change.name) === change.carrier) return;
    this.last.set(change.name, change.carrier);
    for (const watcher of [...(this.watchers.get(change.name) ?? [])]) watcher(change.carrier);
  }

  private stop(): void {
    this.child?.kill('SIGTERM');
    this.child = undefined;
  }
}
