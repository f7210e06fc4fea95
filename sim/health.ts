/**
 * The sim board's own health: a model per health component (power, SoC temperature, storage, clock,
 * memory), answering the HealthSource the firmware reads, with faults through the board's one fault
 * registry. Each model follows what the Linux backend reads on a Pi (hal/linux/health.ts).
 */
import { HalNotFoundError } from '../hal/errors.js';
import {
  type ClockStatus,
  type HealthSource,
  type MemoryPressure,
  NTP_PHASE_LIMIT_US,
  type PowerStatus,
  STA_PLL,
  STA_UNSYNC,
  type StorageStatus,
  TIME_ERROR,
  TIME_OK,
  type ThermalStatus,
  type ThermalTrip,
  kernelClockStatus,
} from '../hal/health.js';
import { type ChipContext, Quantity, valueFaultKinds } from './chips/context.js';

/**
 * Under-voltage and throttling as the `rpi_volt` hwmon and get_throttled show them on a Pi OS kernel.
 * The hwmon is bound there and clears the firmware's sticky bits every 2 s, so the model reports no
 * "since boot" bits: the driver remembers what it saw.
 */
export class SimPowerModel {
  constructor(private readonly ctx: ChipContext) {
    ctx.faults.register(ctx.id, [
      { kind: 'under-voltage', description: 'the supply sags below the firmware threshold (about 4.63 V): under-voltage now' },
      { kind: 'throttled', description: 'the firmware throttles the ARM clock now' },
    ]);
  }

  status(): PowerStatus {
    const underVoltage = this.ctx.faults.hit(this.ctx.id, 'under-voltage') !== undefined;
    const throttled = this.ctx.faults.hit(this.ctx.id, 'throttled') !== undefined;
    const word = (underVoltage ? 0x1 : 0) | (throttled ? 0x4 : 0);
    return { underVoltage, throttled, frequencyCapped: false, softTemperatureLimit: false, throttledBits: word, source: 'sim' };
  }
}

/** A thermal zone: the temperature is a quantity (`out-of-range`, `drift`), the trip points fixed. */
export class SimThermalModel {
  readonly temperatureC: Quantity;

  constructor(
    ctx: ChipContext,
    readonly zone: string,
    /** Not a Pi's device-tree values: a board's trips come from its device tree, and the firmware reads whatever they are. */
    readonly trips: ThermalTrip[] = [
      { type: 'passive', temperatureC: 80 },
      { type: 'critical', temperatureC: 90 },
    ],
  ) {
    this.temperatureC = new Quantity(ctx, 'temperatureC', 45, 95);
    ctx.faults.register(ctx.id, valueFaultKinds.filter((info) => info.kind !== 'wrong-identity'));
  }

  status(): ThermalStatus {
    return { zone: this.zone, temperatureC: this.temperatureC.get(), trips: this.trips };
  }
}

/** A mounted file system and its eMMC. */
export class SimStorageModel {
  readonly usedPct: Quantity;

  constructor(
    private readonly ctx: ChipContext,
    readonly mountPoint: string,
    private readonly device: string | undefined,
  ) {
    this.usedPct = new Quantity(ctx, 'usedPct', 40, 99.9);
    ctx.faults.register(ctx.id, [
      { kind: 'read-only', description: 'the kernel remounts the file system read-only after an I/O error (errors=remount-ro)' },
      {
        kind: 'disk-full',
        description: 'the file system fills: params.usedPct (default 99.9)',
        params: { usedPct: { type: 'number', min: 0, max: 100, why: 'a share of the file system' } },
      },
      { kind: 'worn', description: 'the eMMC reports its end of life: PRE_EOL_INFO urgent (0x03), life time estimate exceeded (0x0B)' },
    ]);
  }

  status(): StorageStatus {
    const { faults, id } = this.ctx;
    const full = faults.hit(id, 'disk-full');
    const worn = this.device !== undefined && faults.hit(id, 'worn') !== undefined;
    const usedParam = full?.params.usedPct;
    return {
      mountPoint: this.mountPoint,
      readOnly: faults.hit(id, 'read-only') !== undefined,
      usedPct: full ? (typeof usedParam === 'number' ? usedParam : 99.9) : this.usedPct.get(),
      ...(this.device !== undefined ? { lifeTimeUsedPct: worn ? 110 : 10, preEol: worn ? 3 : 1 } : {}),
    };
  }
}

/**
 * Clock synchronisation as a Pi's kernel and systemd-timesyncd leave it: synchronised at start (the
 * daemon sets maxerror and esterror to 0 and clears STA_UNSYNC, the marker touched every poll).
 * `unsynchronized` is a boot without network: the kernel's state since ntp_init (kernel/time/ntp.c:
 * time_status STA_UNSYNC, time_maxerror and time_esterror NTP_PHASE_LIMIT), adjtimex answering
 * TIME_ERROR, and no marker.
 */
export class SimClockModel {
  constructor(private readonly ctx: ChipContext) {
    ctx.faults.register(ctx.id, [{ kind: 'unsynchronized', description: 'no time server reachable: the kernel keeps STA_UNSYNC, maxerror 16 s' }]);
  }

  status(): ClockStatus {
    if (this.ctx.faults.hit(this.ctx.id, 'unsynchronized')) {
      return { ...kernelClockStatus({ state: TIME_ERROR, status: STA_UNSYNC, maxErrorUs: NTP_PHASE_LIMIT_US, estErrorUs: NTP_PHASE_LIMIT_US }), source: 'sim' };
    }
    return { ...kernelClockStatus({ state: TIME_OK, status: STA_PLL, maxErrorUs: 0, estErrorUs: 0 }), sinceSyncS: 0, source: 'sim' };
  }
}

/** PSI memory averages, each a quantity (`out-of-range` with params.quantity, `drift`). */
export class SimMemoryModel {
  readonly someAvg10: Quantity;
  readonly someAvg60: Quantity;
  readonly fullAvg10: Quantity;
  readonly fullAvg60: Quantity;

  constructor(ctx: ChipContext) {
    this.someAvg10 = new Quantity(ctx, 'someAvg10', 0, 100);
    this.someAvg60 = new Quantity(ctx, 'someAvg60', 0, 100);
    this.fullAvg10 = new Quantity(ctx, 'fullAvg10', 0, 100);
    this.fullAvg60 = new Quantity(ctx, 'fullAvg60', 0, 100);
    ctx.faults.register(ctx.id, valueFaultKinds.filter((info) => info.kind !== 'wrong-identity'));
  }

  status(): MemoryPressure {
    return { someAvg10: this.someAvg10.get(), someAvg60: this.someAvg60.get(), fullAvg10: this.fullAvg10.get(), fullAvg60: this.fullAvg60.get() };
  }
}

/** The HealthSource of the sim board: whatever health models its entry's components built. */
export class SimHealth implements HealthSource {
  powerModel: SimPowerModel | undefined;
  clockModel: SimClockModel | undefined;
  memoryModel: SimMemoryModel | undefined;
  readonly zones = new Map<string | undefined, SimThermalModel>();
  readonly mounts = new Map<string, SimStorageModel>();

  private missing(what: string): never {
    throw new HalNotFoundError(`the sim board models no ${what}`, { target: what });
  }

  async power(): Promise<PowerStatus> {
    return (this.powerModel ?? this.missing('power status')).status();
  }

  async thermal(zone?: string): Promise<ThermalStatus> {
    return (this.zones.get(zone) ?? this.missing(`thermal zone ${zone ?? 'thermal_zone0'}`)).status();
  }

  async storage(mountPoint: string): Promise<StorageStatus> {
    return (this.mounts.get(mountPoint) ?? this.missing(`file system at ${mountPoint}`)).status();
  }

  async clock(): Promise<ClockStatus> {
    return (this.clockModel ?? this.missing('clock synchronisation')).status();
  }

  async memory(): Promise<MemoryPressure> {
    return (this.memoryModel ?? this.missing('memory pressure')).status();
  }
}
