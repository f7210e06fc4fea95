/**
 * Serial ports on Linux: openSerialPort (hal/serial.ts) over @serialport/bindings-cpp, the native
 * binding the `serialport` package uses. The binding is imported on the first `open`.
 */
import type { BindingInterface } from '@serialport/bindings-interface';
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Clock } from '../clock.js';
import { HalClosedError, HalNotFoundError, HalPermissionError, halErrorFromErrno } from '../errors.js';
import { type SerialController, type SerialPort, type SerialPortSpec, openSerialPort } from '../serial.js';
import { type ModuleLoader, importPackage, loadOptional, moduleMember } from './optional.js';

export interface LinuxSerialOptions {
  clock: Clock;
  /** How to import @serialport/bindings-cpp. Default `import('@serialport/bindings-cpp')`. */
  load?: ModuleLoader;
  /** Called with each opened port's close, so a board can close everything in reverse order. */
  track?: (close: () => Promise<void>) => void;
}

export class LinuxSerialController implements SerialController {
  private readonly load: ModuleLoader;
  private binding: Promise<BindingInterface> | undefined;
  private readonly ports = new Set<SerialPort>();
  private closed = false;

  constructor(private readonly options: LinuxSerialOptions) {
    this.load = options.load ?? importPackage('@serialport/bindings-cpp');
  }

  private getBinding(): Promise<BindingInterface> {
    const loading = (this.binding ??= loadOptional('@serialport/bindings-cpp', 'the Linux serial backend', this.load, (mod) => {
      const autoDetect = moduleMember(mod, 'autoDetect');
      return typeof autoDetect === 'function' ? (autoDetect as () => BindingInterface)() : undefined;
    }));
    loading.catch(() => {
      if (this.binding === loading) this.binding = undefined;
    });
    return loading;
  }

  async open(spec: SerialPortSpec): Promise<SerialPort> {
    const target = `serial:${spec.path}`;
    if (this.closed) throw new HalClosedError(`open ${target} on a closed serial controller`, { target, canceled: true });
    // The native binding reports a failed open as a bare message without errno; checking first
    // gives the firmware a NOT_FOUND or PERMISSION it can act on.
    try {
      await access(spec.path, constants.R_OK | constants.W_OK);
    } catch (err) {
      const errno = typeof err === 'object' && err !== null && 'code' in err ? String((err as { code: unknown }).code) : undefined;
      if (errno === 'ENOENT') throw new HalNotFoundError(`serial port ${spec.path} does not exist`, { target, errno, cause: err });
      if (errno === 'EACCES' || errno === 'EPERM') {
        throw new HalPermissionError(
          `no read/write access to serial port ${spec.path}; run as a member of the \`dialout\` group (sudo usermod -aG dialout $USER)`,
          { target, errno, cause: err },
        );
      }
      throw halErrorFromErrno(err, 'open', target);
    }
    const port = await openSerialPort(await this.getBinding(), this.options.clock, spec);
    if (this.closed) {
      await port.close();
      throw new HalClosedError(`open ${target}: the serial controller closed meanwhile`, { target, canceled: true });
    }
    this.ports.add(port);
    this.options.track?.(() => port.close());
    return port;
  }

  /** Closes every port this controller opened, newest first. Idempotent. */
  async close(): Promise<void> {
    this.closed = true;
    const ports = [...this.ports].reverse();
    this.ports.clear();
    let first: unknown;
    for (const port of ports) await port.close().catch((err: unknown) => (first ??= err));
    if (first !== undefined) throw first;
  }
}
