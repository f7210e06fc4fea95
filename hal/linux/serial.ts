/**
 * Serial ports on Linux: openSerialPort (hal/serial.ts) over @serialport/bindings-cpp, the native
 * binding the `serialport` package uses. The binding is imported on the first `open`. An RS-485 port
 * in `kernel` direction gets TIOCSRS485 / TIOCGRS485 on the binding's fd through the ioctl addon
 * (bindings-cpp has no RS-485 support); one in `gpio` direction gets the board's GPIO controller.
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import type { Clock } from '../clock.js';
import { HalClosedError, HalNotFoundError, HalPermissionError, HalUnsupportedError, halErrorFromErrno } from '../errors.js';
import type { GpioController } from '../gpio.js';
import type { Rs485Ioctl } from '../rs485.js';
import { type SerialBinding, type SerialBindingPort, type SerialController, type SerialPort, type SerialPortSpec, openSerialPort } from '../serial.js';
import { type IoctlBinding, requireIoctlAddon } from './ioctl.js';
import { type ModuleLoader, importPackage, loadOptional, moduleMember } from './optional.js';
import { Opened } from './opened.js';

export interface LinuxSerialOptions {
  clock: Clock;
  /** How to import @serialport/bindings-cpp. Default `import('@serialport/bindings-cpp')`. */
  load?: ModuleLoader;
  /** Called with each opened port's close, so a board can close everything in reverse order. */
  track?: (close: () => Promise<void>) => void;
  /** The board's GPIO lines, for RS-485 DE lines. */
  gpio?: GpioController;
  /** The ioctl addon; default the built one, loaded when a port first needs it. */
  ioctl?: IoctlBinding;
}

export class LinuxSerialController implements SerialController {
  private readonly load: ModuleLoader;
  private binding: Promise<SerialBinding> | undefined;
  private readonly ports: Opened<SerialPort>;

  constructor(private readonly options: LinuxSerialOptions) {
    this.ports = new Opened('serial controller', options.track);
    this.load = options.load ?? importPackage('@serialport/bindings-cpp');
  }

  private getBinding(): Promise<SerialBinding> {
    const loading = (this.binding ??= loadOptional('@serialport/bindings-cpp', 'the Linux serial backend', this.load, (mod) => {
      const autoDetect = moduleMember(mod, 'autoDetect');
      return typeof autoDetect === 'function' ? (autoDetect as () => SerialBinding)() : undefined;
    }));
    loading.catch(() => {
      if (this.binding === loading) this.binding = undefined;
    });
    return loading;
  }

  async open(spec: SerialPortSpec): Promise<SerialPort> {
    const target = `serial:${spec.path}`;
    this.ports.refuseIfClosed(target);
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
    const platform = {
      ...(this.options.gpio && { gpio: this.options.gpio }),
      rs485Ioctl: (port: SerialBindingPort) => this.rs485Ioctl(port, target),
    };
    return this.ports.adopt(await openSerialPort(await this.getBinding(), this.options.clock, spec, platform), target);
  }

  private rs485Ioctl(port: SerialBindingPort, target: string): Rs485Ioctl {
    const addon = this.options.ioctl ?? requireIoctlAddon("the kernel's RS-485 mode (rs485.direction \"kernel\")");
    const { serialSetRs485, serialGetRs485 } = addon;
    if (!serialSetRs485 || !serialGetRs485) {
      throw new HalUnsupportedError(`${target}: the ioctl addon was built from sources without TIOCSRS485; rebuild it with "npm run build:native"`, { target });
    }
    const fd = (): number => {
      const value = (port as { fd?: unknown }).fd;
      if (typeof value !== 'number') throw new HalClosedError(`${target} has no open file descriptor`, { target });
      return value;
    };
    return {
      set: (request) => serialSetRs485(fd(), request.flags, request.delayRtsBeforeSend, request.delayRtsAfterSend),
      get: () => serialGetRs485(fd()),
    };
  }

  /** Closes every port this controller opened, newest first. Idempotent. */
  async close(): Promise<void> {
    const first = await this.ports.closeAll();
    if (first !== undefined) throw first;
  }
}
