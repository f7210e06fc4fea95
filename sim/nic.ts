/**
 * The sim board's network interfaces, seen as /sys/class/net shows them. Traffic flows while the
 * carrier is up, so packet counters grow with virtual time; faults change the link the moment they
 * start or clear, and the counters account for each stretch of time in the state it was in.
 *
 * Faults, on the target given to `addInterface`:
 * - `carrier-down`: no carrier, operstate `down`, speed unknown, no traffic. Each status read counts
 *   against `times`.
 * - `crc-errors`: rx_crc_errors and rx_errors climb at `params.ratePerS` (default 100) per second.
 */
import type { Clock } from '../hal/clock.js';
import { HalInvalidArgumentError, HalNotFoundError } from '../hal/errors.js';
import { type NetController, type NetCounterName, type NetInterface, type NetStatus, netCounterNames } from '../hal/net.js';
import type { FaultKindInfo, FaultRegistry } from './faults.js';

export const nicFaultKinds: FaultKindInfo[] = [
  { kind: 'carrier-down', description: 'cable pulled or peer port down: no carrier, operstate down, no traffic' },
  {
    kind: 'crc-errors',
    description: 'rx_crc_errors and rx_errors climb at params.ratePerS (default 100) per second',
    params: { ratePerS: { type: 'number', min: 0, max: 1_488_095, why: 'no more frames than a 1 Gb/s link carries: 64-byte frames plus 20 bytes of preamble and gap' } },
  },
];

export interface SimNicInterfaceOptions {
  /** Component id that faults name. */
  faultTarget: string;
  /** Negotiated speed while the link is up. Default 1000. */
  speedMbps?: number;
  /** Traffic while the link is up. Defaults 850 received and 620 sent packets a second. */
  rxPacketsPerS?: number;
  txPacketsPerS?: number;
}

interface LinkState {
  carrier: boolean;
  crcErrorsPerS: number;
}

class SimInterface {
  /** Fractional counts, so slow rates still add up over many short reads. */
  private readonly counts = Object.fromEntries(netCounterNames.map((name) => [name, 0])) as Record<NetCounterName, number>;
  private accountedTo: number;
  private state: LinkState;
  readonly watchers = new Set<(carrier: boolean) => void>();

  constructor(
    readonly name: string,
    private readonly options: Required<SimNicInterfaceOptions>,
    private readonly clock: Clock,
    private readonly faults: FaultRegistry,
  ) {
    this.accountedTo = clock.now();
    this.state = this.currentState();
  }

  get faultTarget(): string {
    return this.options.faultTarget;
  }

  private currentState(): LinkState {
    const down = this.faults.active(this.options.faultTarget, 'carrier-down') !== undefined;
    const crc = this.faults.active(this.options.faultTarget, 'crc-errors');
    const rate = crc && typeof crc.params.ratePerS === 'number' ? crc.params.ratePerS : 100;
    return { carrier: !down, crcErrorsPerS: crc ? rate : 0 };
  }

  /** Counts the time since the last accounting in the state the link had during it. */
  private account(): void {
    const now = this.clock.now();
    const seconds = (now - this.accountedTo) / 1000;
    this.accountedTo = now;
    if (seconds <= 0) return;
    const { carrier, crcErrorsPerS } = this.state;
    if (carrier) {
      this.counts.rx_packets += this.options.rxPacketsPerS * seconds;
      this.counts.tx_packets += this.options.txPacketsPerS * seconds;
    }
    const crcErrors = carrier ? crcErrorsPerS * seconds : 0;
    this.counts.rx_crc_errors += crcErrors;
    this.counts.rx_errors += crcErrors;
  }

  /** A fault on this interface started or cleared: watchers learn of a carrier change at once, as from a netlink RTM_NEWLINK. */
  changed(): void {
    this.account();
    const before = this.state.carrier;
    this.state = this.currentState();
    if (this.state.carrier !== before) for (const watcher of [...this.watchers]) watcher(this.state.carrier);
  }

  status(): NetStatus {
    this.account();
    const down = this.faults.hit(this.options.faultTarget, 'carrier-down') !== undefined;
    const carrier = !down;
    return {
      name: this.name,
      carrier,
      operstate: carrier ? 'up' : 'down',
      speedMbps: carrier ? this.options.speedMbps : null,
      counters: Object.fromEntries(netCounterNames.map((name) => [name, Math.floor(this.counts[name])])) as Record<NetCounterName, number>,
    };
  }
}

export class SimNic implements NetController {
  private readonly interfaces = new Map<string, SimInterface>();

  constructor(
    private readonly clock: Clock,
    private readonly faults: FaultRegistry,
  ) {
    faults.on((event) => {
      if (event.type === 'injected') return;
      for (const iface of this.interfaces.values()) if (iface.faultTarget === event.fault.target) iface.changed();
    });
  }

  addInterface(name: string, options: SimNicInterfaceOptions): void {
    if (this.interfaces.has(name)) throw new HalInvalidArgumentError(`interface ${name} already exists on the sim NIC`, { target: `net:${name}` });
    const full: Required<SimNicInterfaceOptions> = { speedMbps: 1000, rxPacketsPerS: 850, txPacketsPerS: 620, ...options };
    this.faults.register(options.faultTarget, nicFaultKinds);
    this.interfaces.set(name, new SimInterface(name, full, this.clock, this.faults));
  }

  async open(name: string): Promise<NetInterface> {
    await Promise.resolve();
    this.find(name);
    return {
      name,
      status: async () => {
        await Promise.resolve();
        return this.find(name).status();
      },
      watch: (watcher) => {
        const watchers = this.find(name).watchers;
        watchers.add(watcher);
        return () => watchers.delete(watcher);
      },
    };
  }

  private find(name: string): SimInterface {
    const iface = this.interfaces.get(name);
    if (!iface) {
      throw new HalNotFoundError(`/sys/class/net/${name} does not exist`, { target: `net:${name}`, errno: 'ENOENT' });
    }
    return iface;
  }
}
