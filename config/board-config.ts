/**
 * The shape of a `boards.json` entry. `boards.schema.json` is the validated form of these types;
 * `loadBoards` (config/boards.ts) checks a file against it once, at start-up, fills in the defaults the
 * schema names (so a loaded entry has every knob marked "Default ..." below set) and freezes the
 * result.
 */
import type { ComponentConfig } from './component-kinds.js';

export type * from './component-kinds.js';

/** A logical GPIO level: 1 is active, whatever the line's `activeLow`. */
export type GpioValue = 0 | 1;
export type GpioEdge = 'none' | 'rising' | 'falling' | 'both';

/** A range for one quantity a driver reads. Past `warn*` the component is degraded; past `min`/`max`, failed. */
export interface Range {
  min?: number;
  max?: number;
  warnMin?: number;
  warnMax?: number;
}

export interface I2cBusConfig {
  id: string;
  /** Character device on a real board (`/dev/i2c-1`). */
  device: string;
  /** Per-transfer timeout. Default 50 ms. */
  timeoutMs?: number;
  /**
   * SCL rate in Hz, 10 kHz to 1 MHz. Default 100000, a Raspberry Pi's unless config.txt sets
   * `dtparam=i2c_arm_baudrate`. The sim board charges each transfer its bits at this rate; on a real
   * board the kernel sets the rate and this records it (for the diagnosis budget).
   */
  clockHz?: number;
  /**
   * The kernel's adapter driver, which decides how the bus fails (the errno, and how long a hung
   * transfer holds it): `bcm2835` on a Pi Zero 2 W and Pi 4, `designware` on a Pi 5 (RP1). The sim
   * board fails the same way. Default `generic`.
   */
  adapter?: I2cAdapterKind;
}

export type I2cAdapterKind = 'bcm2835' | 'designware' | 'generic';

/** An entry of the board's `gpio` table; the table's key is the name components refer to. */
export interface GpioLineConfig {
  /** Chip label (`pinctrl-bcm2711`, `pinctrl-rp1`, `sim-gpio`). */
  chip: string;
  /** Line name (`GPIO17`) or offset on the chip. */
  line: string | number;
  direction: 'in' | 'out';
  /** Default false. */
  activeLow?: boolean;
  /** Inputs only. */
  edge?: GpioEdge;
  /** Inputs only. */
  debounceMs?: number;
  /** Outputs only. */
  initial?: GpioValue;
}

export interface SerialPortConfig {
  id: string;
  path: string;
  baudRate: number;
  /** Default 8. */
  dataBits?: 7 | 8;
  /** Default 1. */
  stopBits?: 1 | 2;
  /** Default `none`. */
  parity?: 'none' | 'even' | 'odd';
  /** Hardware flow control (CRTSCTS). Default false; conflicts with `rs485`. */
  rtscts?: boolean;
  /** A half-duplex RS-485 line: how its transceiver's DE is switched. Absent: a full-duplex line. */
  rs485?: Rs485Config;
}

/** Direction control of a half-duplex RS-485 transceiver (hal/rs485.ts). */
export interface Rs485Config {
  /**
   * `kernel`: the UART driver's RS-485 mode switches RTS, wired to DE (TIOCSRS485; a Pi's PL011 and
   * mini UART have it). `gpio`: the firmware drives `deLine` around each frame, on any UART.
   */
  direction: 'kernel' | 'gpio';
  /** `gpio` only, and required there: an output in the `gpio` table wired to DE (and /RE, when tied to it). */
  deLine?: string;
  /** `kernel` only: the RTS level while sending. Default `high` (DE wired straight to RTS). */
  rtsWhileSending?: 'high' | 'low';
  /** ms from DE rising to the first start bit, 0-100. Default 0. */
  delayBeforeSendMs?: number;
  /** ms from the last stop bit to DE falling, 0-100. Default 0. */
  delayAfterSendMs?: number;
  /** The transceiver's receiver stays on while it drives (/RE grounded): our request comes back first. Default false. */
  echo?: boolean;
}

export interface WatchdogConfig {
  device: string;
  /** Requested timeout in seconds; the hardware may apply less. */
  timeoutS: number;
  /** How often the firmware kicks it; less than the timeout. Absent: the keeper uses a third of the timeout. */
  kickIntervalMs?: number;
  /**
   * The kernel driver: `bcm2835` (bcm2835_wdt, every Raspberry Pi) counts at most 15 s and refuses a
   * longer timeout with EINVAL; `generic`, a driver whose longer timeouts the watchdog core emulates.
   * Default `generic`.
   */
  driver?: 'bcm2835' | 'generic';
  /**
   * This many boots caused by the watchdog within `resetLoopWindowS` is a reset loop: the watchdog
   * component is failed until the window holds fewer. Default 3; absent (an entry not loaded through
   * the schema): no reset-loop check.
   */
  resetLoopCount?: number;
  /** Default 3600 s. */
  resetLoopWindowS?: number;
}

export interface NetInterfaceConfig {
  /** Kernel interface name (`eth0`, `end0` on Bookworm). Ethernet components name one of these. */
  name: string;
}

/**
 * A service's gate policy as boards.json spells it: every field optional. `gatePolicy()`
 * (config/gate-policy.ts) and the boards loader turn it into a GatePolicy with the schema's defaults.
 */
export interface GatePolicyInput {
  mode?: 'after' | 'before';
  onFail?: 'reset' | 'close';
  reuse?: 'never' | 'while-held';
  maxAgeMs?: number;
  recheckMs?: number;
  failClosed?: boolean;
  queue?: number;
  maxConnections?: number;
  idleTimeoutMs?: number;
  keepAliveMs?: number;
}

/** A resolved gate policy: what the gate works from. The defaults live in boards.schema.json alone. */
export interface GatePolicy {
  /** `after` (claim 2) or `before` (claim 3, NFQUEUE). */
  mode: 'after' | 'before';
  onFail: 'reset' | 'close';
  reuse: 'never' | 'while-held';
  /** Oldest verdict a held connection lets a new one reuse. */
  maxAgeMs: number;
  /** Background re-diagnosis interval while connections are held; 0 turns it off. */
  recheckMs: number;
  /** before mode: drop SYNs when the firmware is gone instead of letting them through. */
  failClosed: boolean;
  /** NFQUEUE number for before mode. */
  queue: number;
  /** Absent: no limit. */
  maxConnections?: number;
  /** Absent: connections may stay idle forever. */
  idleTimeoutMs?: number;
  /** Idle ms before TCP keepalive probes start on a connection, so a client that vanished is reclaimed; 0 turns them off. */
  keepAliveMs: number;
}

/** MODBUS/TCP Security (`modbus-tls`): who the server is, whom it trusts, what each role may do. */
export interface TlsConfig {
  /** PEM file of the server's certificate (and chain). */
  cert: string;
  /** PEM file of the server's private key. */
  key: string;
  /** PEM file of the CA certificates a client certificate must chain to. */
  ca: string;
  /** Role (the client certificate's role extension) -> the function codes it may use. */
  roles: Record<string, number[]>;
  /** A client still in the TLS handshake this long after its connection was accepted is cut. Default 10000. */
  handshakeTimeoutMs?: number;
}

/**
 * What stands behind a service's port:
 * - `modbus`: the built-in Modbus TCP server, behind the gate;
 * - `guard`: a port another process on the appliance listens on; the gate only holds its SYNs (before
 *   mode) and answers SYN/ACK or RST, the bytes never pass through handcheck;
 * - `proxy`: the gate accepts (after mode, or before) and splices an admitted client to `upstream`.
 */
export type ServiceKind = 'modbus' | 'guard' | 'proxy';

/** How a diagnosis checks a proxy's upstream or a guard's daemon; `timeoutMs` (default 500, at most 1500) bounds each. */
export type ProbeConfig =
  | { type: 'connect'; timeoutMs?: number }
  | { type: 'http'; timeoutMs?: number; path?: string; host?: string; expectStatus?: number[] }
  | { type: 'modbus'; timeoutMs?: number; unitId?: number; function?: 3 | 4; address?: number; count?: number }
  | { type: 'send-expect'; timeoutMs?: number; send: string; expect: string; encoding?: 'utf8' | 'hex' };

export interface ServiceConfig {
  id: string;
  /** Default `modbus`. */
  kind?: ServiceKind;
  /**
   * Kind `modbus` only, and required there: `modbus-tcp`, or `modbus-tls` (MODBUS/TCP Security:
   * Modbus TCP inside TLS, needs `tls`).
   */
  protocol?: 'modbus-tcp' | 'modbus-tls';
  /**
   * `HOST:PORT` (`[::1]:502` for IPv6); port 0 picks a free port. For a guard, where the other process
   * listens (a fixed port).
   */
  listen: string;
  /** Component ids diagnosed on each accepted connection, with the application behind the port. */
  dependsOn: string[];
  /**
   * Always present once loaded, with every default filled in. A guard's is `mode: 'before'` and
   * `reuse: 'never'`: handcheck holds none of its connections, so no verdict is reused on their account.
   */
  gate: GatePolicy;
  /** Kind `proxy`: `HOST:PORT` of the service the proxy splices admitted clients to. */
  upstream?: string;
  /** Kind `proxy`: ms to wait for the upstream to accept a spliced connection. Default 2000. */
  connectTimeoutMs?: number;
  /**
   * Kind `proxy`: how the diagnosis checks the upstream; absent, a connect. Kind `guard`: how it checks
   * the daemon at its listen address (loopback for 0.0.0.0 and ::); absent, only that a socket listens.
   */
  probe?: ProbeConfig;
  /** `modbus-tls` only, and required there. */
  tls?: TlsConfig;
  /** Modbus: unit ids served (1-247). Default [1]. 0 and 255 are always accepted. */
  unitIds?: number[];
  /**
   * Modbus: clients allowed to write (function codes 5, 6, 15, 16), as IP addresses or CIDR subnets
   * (`10.0.0.0/24`; `0.0.0.0/0` and `::/0` for everyone). Empty: no one. Absent: everyone while the
   * service listens on loopback only, no one once it listens beyond it (a start-up warning says so).
   */
  writeAllow?: string[];
}

/** Only for `backend: 'sim'`. */
export interface SimConfig {
  /** Initial physical values of simulated components, by component id then quantity name. */
  initial?: Record<string, Record<string, number>>;
}

export interface BoardConfig {
  id: string;
  name: string;
  /** Notes for people: wiring, boot config (`dtoverlay=disable-bt`), choices made. */
  description?: string;
  /** Which HAL backend the firmware uses on this board. */
  backend: 'sim' | 'linux';
  i2c?: I2cBusConfig[];
  gpio?: Record<string, GpioLineConfig>;
  /**
   * Linux boards: `cdev` (GPIO character device, v2 uAPI, through the native addon) or `sysfs` (onoff).
   * Absent: cdev where /dev/gpiochip* exists and the addon is built, sysfs otherwise.
   */
  gpioBackend?: 'cdev' | 'sysfs';
  serial?: SerialPortConfig[];
  watchdog?: WatchdogConfig;
  net?: NetInterfaceConfig[];
  /** Name of an output entry in `gpio` that shows the firmware's status. */
  statusLed?: string;
  components: ComponentConfig[];
  /**
   * Every component is re-diagnosed this often (board-clock ms), connections or not, so that /status,
   * /metrics, the Modbus state registers and the status LED stay current. Loaded entries always have
   * it (the schema's default); absent: no background refresh.
   */
  refreshMs?: number;
  /**
   * Where the firmware keeps what outlives a reboot (the boot record). Absent: /var/lib/handcheck on
   * a linux board (systemd's StateDirectory), a fresh temporary directory on the sim board; the CLI's
   * `--state-dir` overrides both.
   */
  stateDir?: string;
  services: ServiceConfig[];
  sim?: SimConfig;
}

export interface BoardsFile {
  $schema?: string;
  boards: BoardConfig[];
}
