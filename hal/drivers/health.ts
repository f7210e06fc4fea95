/**
 * Drivers for the board's own health, over the HealthSource of the board (real sysfs/procfs or the
 * sim board): the same `identify` / `read` contract as the chip drivers, so the device-state manager
 * diagnoses them like any component. Flags are read as 0/1 quantities, so the board entry's
 * thresholds judge them and the Modbus map carries them.
 */
import type { ClockStatus, HealthSource, MemoryPressure, PowerStatus, StorageStatus, ThermalStatus } from '../health.js';
import type { Driver, Identity, Reading } from './driver.js';

const bit = (value: boolean): number => (value ? 1 : 0);

abstract class HealthDriver<S> implements Driver {
  constructor(
    readonly target: string,
    protected readonly part: string,
  ) {}

  protected abstract status(): Promise<S>;
  protected abstract reading(status: S): Reading;

  async identify(): Promise<Identity> {
    await this.status();
    return { part: this.part };
  }

  async read(): Promise<Reading> {
    return this.reading(await this.status());
  }
}

/**
 * Under-voltage and throttling. "Occurred" is since boot where the firmware's sticky bits survive,
 * and otherwise since this driver first read (the `rpi_volt` hwmon clears them every 2 s): what this
 * driver has seen is remembered either way.
 */
export class PowerDriver extends HealthDriver<PowerStatus> {
  private sawUnderVoltage = false;
  private sawThrottling = false;

  constructor(private readonly health: HealthSource) {
    super('power', 'Raspberry Pi firmware power status');
  }

  protected status(): Promise<PowerStatus> {
    return this.health.power();
  }

  protected reading(status: PowerStatus): Reading {
    this.sawUnderVoltage ||= status.underVoltage || status.underVoltageOccurred === true;
    this.sawThrottling ||= status.throttled === true || status.throttlingOccurred === true;
    return {
      underVoltage: bit(status.underVoltage),
      underVoltageOccurred: bit(this.sawUnderVoltage),
      ...(status.throttled !== undefined ? { throttled: bit(status.throttled), throttlingOccurred: bit(this.sawThrottling) } : {}),
    };
  }
}

export class SocTemperatureDriver extends HealthDriver<ThermalStatus> {
  /** The zone's trip points as last read, for judging. */
  trips: ThermalStatus['trips'] = [];

  constructor(
    private readonly health: HealthSource,
    private readonly zone: string | undefined,
  ) {
    super(`thermal:${zone ?? 'thermal_zone0'}`, `thermal zone ${zone ?? 'thermal_zone0'}`);
  }

  protected async status(): Promise<ThermalStatus> {
    const status = await this.health.thermal(this.zone);
    this.trips = status.trips;
    return status;
  }

  protected reading(status: ThermalStatus): Reading {
    return { temperatureC: status.temperatureC };
  }
}

export class StorageDriver extends HealthDriver<StorageStatus> {
  constructor(
    private readonly health: HealthSource,
    private readonly mountPoint: string,
    private readonly device: string | undefined,
  ) {
    super(`mount:${mountPoint}`, `file system at ${mountPoint}${device ? ` on ${device}` : ''}`);
  }

  protected status(): Promise<StorageStatus> {
    return this.health.storage(this.mountPoint, this.device);
  }

  protected reading(status: StorageStatus): Reading {
    return {
      readOnly: bit(status.readOnly),
      usedPct: status.usedPct,
      ...(status.lifeTimeUsedPct !== undefined ? { lifeTimeUsedPct: status.lifeTimeUsedPct } : {}),
      ...(status.preEol !== undefined ? { preEol: status.preEol } : {}),
    };
  }
}

export class ClockSyncDriver extends HealthDriver<ClockStatus> {
  constructor(private readonly health: HealthSource) {
    super('clock', 'system clock synchronisation');
  }

  protected status(): Promise<ClockStatus> {
    return this.health.clock();
  }

  protected reading(status: ClockStatus): Reading {
    return {
      synchronized: bit(status.synchronized),
      ...(status.sinceSyncS !== undefined ? { sinceSyncS: status.sinceSyncS } : {}),
      ...(status.kernel ? { maxErrorS: status.kernel.maxErrorS, estErrorS: status.kernel.estErrorS } : {}),
      ...(status.why !== undefined ? { why: status.why } : {}),
    };
  }
}

export class MemoryPressureDriver extends HealthDriver<MemoryPressure> {
  constructor(private readonly health: HealthSource) {
    super('memory', 'memory pressure (PSI)');
  }

  protected status(): Promise<MemoryPressure> {
    return this.health.memory();
  }

  protected reading(status: MemoryPressure): Reading {
    return { ...status };
  }
}
