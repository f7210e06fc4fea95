import { mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { systemClock } from '../../hal/clock.js';
import { type I2cBusHandle, LinuxI2cBus, openLinuxI2cBus } from '../../hal/linux/i2c.js';
import { importPackage } from '../../hal/linux/optional.js';
import { VirtualClock } from '../../sim/clock.js';
import { makeTempDir } from './fake-sysfs.js';
import { rejection } from '../helpers/rejection.js';

interface Pending {
  call: string;
  resolve: (value: unknown) => void;
  reject: (err: unknown) => void;
}

function errno(code: string, message = code): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code}, ${message}`), { code });
}

/**
 * An i2c-bus promisified bus at the package boundary. Each call is recorded; by default it answers
 * from `reply`, after queued `failures` (errno codes) are used up; with `manual` it stays pending
 * until the test settles it.
 */
class FakeHandle implements I2cBusHandle {
  calls: string[] = [];
  failures: string[] = [];
  manual = false;
  pending: Pending[] = [];
  closed = 0;
  reply: { word: number; byte: number; bytes: Buffer; short: number } = { word: 0, byte: 0, bytes: Buffer.alloc(0), short: 0 };

  private answer<T>(call: string, value: () => T): Promise<T> {
    this.calls.push(call);
    if (this.manual) {
      return new Promise<T>((resolve, reject) => this.pending.push({ call, resolve: resolve as (v: unknown) => void, reject }));
    }
    const failure = this.failures.shift();
    return failure ? Promise.reject(errno(failure)) : Promise.resolve(value());
  }
  private block(length: number, buffer: Buffer): { bytesRead: number; buffer: Buffer } {
    this.reply.bytes.copy(buffer, 0, 0, length);
    return { bytesRead: length - this.reply.short, buffer };
  }

  readByte(addr: number, cmd: number): Promise<number> {
    return this.answer(`readByte ${addr} ${cmd}`, () => this.reply.byte);
  }
  writeByte(addr: number, cmd: number, byte: number): Promise<void> {
    return this.answer(`writeByte ${addr} ${cmd} ${byte}`, () => undefined);
  }
  readWord(addr: number, cmd: number): Promise<number> {
    return this.answer(`readWord ${addr} ${cmd}`, () => this.reply.word);
  }
  writeWord(addr: number, cmd: number, word: number): Promise<void> {
    return this.answer(`writeWord ${addr} ${cmd} 0x${word.toString(16)}`, () => undefined);
  }
  readI2cBlock(addr: number, cmd: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }> {
    return this.answer(`readI2cBlock ${addr} ${cmd} ${length}`, () => this.block(length, buffer));
  }
  writeI2cBlock(addr: number, cmd: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }> {
    return this.answer(`writeI2cBlock ${addr} ${cmd} ${buffer.subarray(0, length).toString('hex')}`, () => ({ bytesWritten: length, buffer }));
  }
  i2cRead(addr: number, length: number, buffer: Buffer): Promise<{ bytesRead: number; buffer: Buffer }> {
    return this.answer(`i2cRead ${addr} ${length}`, () => this.block(length, buffer));
  }
  i2cWrite(addr: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number; buffer: Buffer }> {
    return this.answer(`i2cWrite ${addr} ${buffer.subarray(0, length).toString('hex')}`, () => ({ bytesWritten: length, buffer }));
  }
  async close(): Promise<void> {
    this.closed += 1;
  }
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

let clock: VirtualClock;
let handle: FakeHandle;
let bus: LinuxI2cBus;

beforeEach(() => {
  clock = new VirtualClock(0);
  handle = new FakeHandle();
  bus = new LinuxI2cBus('i2c-1', handle, { clock, defaultTimeoutMs: 50 });
});

describe('LinuxI2cBus at the i2c-bus boundary', () => {
  it('swaps SMBus little-endian words for big-endian chips (TMP102 at 25 C is 0x1900)', async () => {
    // The TMP102 sends 0x19 then 0x00; SMBus takes the first byte as the low one.
    handle.reply.word = 0x0019;
    expect(await bus.readWord(0x48, 0x00, 'be')).toBe(0x1900);
    expect(await bus.readWord(0x48, 0x00, 'le')).toBe(0x0019);
    await bus.writeWord(0x48, 0x02, 0x4b00, 'be');
    await bus.writeWord(0x48, 0x02, 0x4b00, 'le');
    expect(handle.calls.slice(2)).toEqual([`writeWord ${0x48} 2 0x4b`, `writeWord ${0x48} 2 0x4b00`]);
  });

  it('passes bytes, blocks and raw transfers through', async () => {
    handle.reply.byte = 0x60;
    handle.reply.bytes = Buffer.from('88 6e 56 6b 32 00'.replaceAll(' ', ''), 'hex');
    expect(await bus.readByte(0x76, 0xd0)).toBe(0x60);
    expect((await bus.readBlock(0x76, 0x88, 6)).toString('hex')).toBe('886e566b3200');
    await bus.writeByte(0x76, 0xf4, 0x27);
    await bus.writeBlock(0x50, 0x10, Buffer.of(1, 2, 3));
    expect((await bus.read(0x50, 2)).toString('hex')).toBe('886e');
    await bus.write(0x50, Buffer.of(0x00, 0x7f));
    expect(handle.calls).toEqual([
      `readByte ${0x76} ${0xd0}`,
      `readI2cBlock ${0x76} ${0x88} 6`,
      `writeByte ${0x76} ${0xf4} ${0x27}`,
      `writeI2cBlock ${0x50} 16 010203`,
      `i2cRead ${0x50} 2`,
      `i2cWrite ${0x50} 007f`,
    ]);
  });

  it.each([
    ['ETIMEDOUT', 'ERR_HAL_TIMEOUT'],
    ['EAGAIN', 'ERR_HAL_BUS_BUSY'],
    ['EBUSY', 'ERR_HAL_BUS_BUSY'],
    ['EIO', 'ERR_HAL_IO'],
    ['EOPNOTSUPP', 'ERR_HAL_UNSUPPORTED'],
    ['ENODEV', 'ERR_HAL_NOT_FOUND'],
    ['EACCES', 'ERR_HAL_PERMISSION'],
  ])('maps %s to %s without retrying', async (code, expected) => {
    handle.failures = [code];
    const err = await rejection(bus.readByte(0x48, 0x01));
    expect([err.code, err.errno, err.target]).toEqual([expected, code, 'i2c-1@0x48']);
    expect(handle.calls).toHaveLength(1);
  });

  it.each(['EREMOTEIO', 'ENXIO'])('retries a %s once after 5 ms, then fails with ERR_HAL_NACK', async (code) => {
    handle.failures = [code, code];
    const result = rejection(bus.readByte(0x48, 0x01));
    await tick();
    expect(handle.calls).toHaveLength(1);
    await clock.advance(4);
    expect(handle.calls).toHaveLength(1);
    await clock.advance(1);
    const err = await result;
    expect(handle.calls).toHaveLength(2);
    expect([err.code, err.errno]).toEqual(['ERR_HAL_NACK', code]);
    expect(err.message).toContain('retried after NACK');
  });

  it('succeeds when the chip acknowledges on the retry', async () => {
    handle.failures = ['EREMOTEIO'];
    handle.reply.byte = 0x75;
    const result = bus.readByte(0x48, 0x0f);
    await tick();
    await clock.advance(5);
    expect(await result).toBe(0x75);
    expect(handle.calls).toEqual([`readByte ${0x48} 15`, `readByte ${0x48} 15`]);
  });

  it('runs transfers one at a time in call order', async () => {
    handle.manual = true;
    const first = bus.readByte(0x48, 1);
    const second = bus.readByte(0x49, 2);
    const third = bus.writeByte(0x4a, 3, 4);
    await tick();
    expect(handle.calls).toEqual([`readByte ${0x48} 1`]);
    handle.pending.shift()?.resolve(0x11);
    expect(await first).toBe(0x11);
    await tick();
    expect(handle.calls).toEqual([`readByte ${0x48} 1`, `readByte ${0x49} 2`]);
    handle.pending.shift()?.reject(errno('EIO'));
    expect((await rejection(second)).code).toBe('ERR_HAL_IO');
    await tick();
    handle.pending.shift()?.resolve(undefined);
    await third;
    expect(handle.calls).toHaveLength(3);
  });

  it('fails a hung transfer and the ones queued behind it on time, and never runs the abandoned ones', async () => {
    handle.manual = true;
    const hung = rejection(bus.readByte(0x48, 0));
    await clock.advance(20);
    const queued = rejection(bus.writeByte(0x48, 1, 0xff, { timeoutMs: 10 }));
    await clock.advance(10);
    const queuedErr = await queued;
    expect([queuedErr.code, clock.now()]).toEqual(['ERR_HAL_TIMEOUT', 30]);
    await clock.advance(20);
    expect((await hung).code).toBe('ERR_HAL_TIMEOUT');
    expect(clock.now()).toBe(50);
    // The kernel finally returns; the write whose caller was told it timed out must not follow.
    handle.pending.shift()?.resolve(0);
    await tick();
    await tick();
    expect(handle.calls).toEqual([`readByte ${0x48} 0`]);
  });

  it('cancels on abort with ERR_HAL_CLOSED and canceled', async () => {
    handle.manual = true;
    const controller = new AbortController();
    const result = rejection(bus.readByte(0x48, 0, { signal: controller.signal }));
    controller.abort();
    const err = await result;
    expect([err.code, err.canceled]).toEqual(['ERR_HAL_CLOSED', true]);
  });

  it('checks arguments before they reach the bus', async () => {
    expect((await rejection(bus.readByte(0x78, 0))).message).toContain('address 0x78 for i2c-1@0x78 is outside 0x03-0x77');
    expect((await rejection(bus.readBlock(0x50, 0, 33))).code).toBe('ERR_HAL_INVALID_ARG');
    expect((await rejection(bus.writeByte(0x50, 0, 256))).code).toBe('ERR_HAL_INVALID_ARG');
    expect((await rejection(bus.writeWord(0x50, 0, 0x10000, 'be'))).code).toBe('ERR_HAL_INVALID_ARG');
    expect(handle.calls).toEqual([]);
  });

  it('reports a short read as ERR_HAL_IO', async () => {
    handle.reply.bytes = Buffer.alloc(8);
    handle.reply.short = 3;
    const err = await rejection(bus.read(0x50, 8));
    expect([err.code, err.message]).toEqual(['ERR_HAL_IO', 'read on i2c-1@0x50 transferred 5 of 8 bytes']);
  });

  it('close rejects queued transfers as canceled, closes the handle once, and is idempotent', async () => {
    handle.manual = true;
    const inFlight = bus.readByte(0x48, 0);
    const queued = rejection(bus.readByte(0x48, 1));
    await tick();
    const closing = bus.close();
    handle.pending.shift()?.resolve(0x42);
    expect(await inFlight).toBe(0x42);
    const err = await queued;
    expect([err.code, err.canceled]).toEqual(['ERR_HAL_CLOSED', true]);
    await closing;
    await bus.close();
    expect(handle.closed).toBe(1);
    expect(handle.calls).toEqual([`readByte ${0x48} 0`]);
    expect((await rejection(bus.readByte(0x48, 2))).canceled).toBe(true);
  });

  it('fails new transfers at once while a hung one still holds the bus, and queues again once the kernel gives up', async () => {
    handle.manual = true;
    const hung = rejection(bus.readWord(0x48, 0, 'be', { timeoutMs: 100 }));
    await clock.advance(100);
    expect((await hung).code).toBe('ERR_HAL_TIMEOUT');
    // i2c-bus's worker is still in the kernel (up to the adapter's 1 s): nothing may queue behind it.
    const held = await rejection(bus.readByte(0x49, 0));
    expect([held.code, held.target]).toEqual(['ERR_HAL_BUS_HELD', 'i2c-1@0x49']);
    expect(held.message).toContain('still held by read word on i2c-1@0x48');
    expect(bus.held()).toMatchObject({ what: 'read word', target: 'i2c-1@0x48', since: 0 });
    handle.pending.shift()?.reject(errno('ETIMEDOUT'));
    await tick();
    expect(bus.held()).toBeUndefined();
    handle.manual = false;
    handle.reply.byte = 5;
    expect(await bus.readByte(0x49, 0)).toBe(5);
    expect(handle.calls).toEqual([`readWord ${0x48} 0`, `readByte ${0x49} 0`]);
  });

  it('reports EBUSY from selecting the address (i2c-bus setAddr: ioctl I2C_SLAVE, i2c-dev.c i2cdev_check_addr) as a kernel driver owning it, naming the driver, without recovery, and keeps refusing that address', async () => {
    const temp = await makeTempDir('i2c-owned');
    try {
      await mkdir(join(temp.dir, '1-0048'));
      await writeFile(join(temp.dir, '1-0048', 'name'), 'tmp102\n');
      await symlink('../../../bus/i2c/drivers/tmp102', join(temp.dir, '1-0048', 'driver'));
      let calls = 0;
      handle.readWord = () => {
        calls += 1;
        return Promise.reject(Object.assign(errno('EBUSY', 'Device or resource busy'), { syscall: 'setAddr' }));
      };
      const owned = new LinuxI2cBus('i2c-1', handle, { clock, busNumber: 1, sysfsDevices: temp.dir });
      const err = await rejection(owned.readWord(0x48, 0x01, 'be'));
      expect([err.code, err.errno, err.target]).toEqual(['ERR_HAL_ADDRESS_IN_USE', 'EBUSY', 'i2c-1@0x48']);
      expect(err.message).toContain('a kernel driver (tmp102) holds the address');
      expect(err.message).toContain('the bus is not stuck');
      // i2c-bus keeps the file whose address selection failed; the next transfer on it would go to 0x00.
      expect((await rejection(owned.readByte(0x48, 0x00))).code).toBe('ERR_HAL_ADDRESS_IN_USE');
      expect([calls, handle.calls, handle.closed]).toEqual([1, [], 0]);
      handle.reply.byte = 3;
      expect(await owned.readByte(0x49, 0)).toBe(3);
    } finally {
      await temp.remove();
    }
  });

  it('refuses an address it already selected once a kernel driver is bound to it (sysfs N-00AA/driver, the condition of i2c-dev.c i2cdev_check), looking at most every boundCheckMs, and goes on once the device is deleted', async () => {
    const temp = await makeTempDir('i2c-bound');
    try {
      const watched = new LinuxI2cBus('i2c-1', handle, { clock, busNumber: 1, sysfsDevices: temp.dir, boundCheckMs: 1000 });
      handle.reply.word = 0x0019;
      // The first transfer selects 0x48 (i2c-dev checked it then); the second looks in sysfs.
      expect(await watched.readWord(0x48, 0x00, 'be')).toBe(0x1900);
      expect(await watched.readWord(0x48, 0x00, 'be')).toBe(0x1900);
      // `echo tmp102 0x48 > .../new_device` after i2c-bus selected 0x48: i2c-dev never asks again.
      await mkdir(join(temp.dir, '1-0048'));
      await writeFile(join(temp.dir, '1-0048', 'name'), 'tmp102\n');
      await symlink('../../../bus/i2c/drivers/tmp102', join(temp.dir, '1-0048', 'driver'));
      // Within boundCheckMs of the last look the bus does not look again.
      expect(await watched.readWord(0x48, 0x00, 'be')).toBe(0x1900);
      await clock.advance(1000);
      const err = await rejection(watched.readWord(0x48, 0x00, 'be'));
      expect([err.code, err.errno, err.target]).toEqual(['ERR_HAL_ADDRESS_IN_USE', undefined, 'i2c-1@0x48']);
      expect(err.message).toContain(`a kernel driver (tmp102) was bound to the address while the firmware used it (${join(temp.dir, '1-0048')}/driver)`);
      expect(err.message).toContain('the bus is not stuck');
      // Other addresses, and addresses never selected (i2c-dev checks those itself), are untouched.
      handle.reply.byte = 3;
      expect(await watched.readByte(0x49, 0)).toBe(3);
      expect(handle.calls).toEqual([`readWord ${0x48} 0`, `readWord ${0x48} 0`, `readWord ${0x48} 0`, `readByte ${0x49} 0`]);
      // `delete_device`: the file is still selected, so the transfers go on from the next look.
      await rm(join(temp.dir, '1-0048'), { recursive: true });
      expect((await rejection(watched.readWord(0x48, 0x00, 'be'))).code).toBe('ERR_HAL_ADDRESS_IN_USE');
      await clock.advance(1000);
      expect(await watched.readWord(0x48, 0x00, 'be')).toBe(0x1900);
      expect(handle.closed).toBe(0);
    } finally {
      await temp.remove();
    }
  });

  it('keeps EBUSY from a transfer itself (an SMBus adapter busy too long, fault-codes.rst) as ERR_HAL_BUS_BUSY, and never reopens the bus', async () => {
    handle.failures = ['EBUSY', 'EAGAIN'];
    expect((await rejection(bus.readByte(0x48, 0))).code).toBe('ERR_HAL_BUS_BUSY');
    expect((await rejection(bus.readByte(0x48, 0))).code).toBe('ERR_HAL_BUS_BUSY');
    handle.reply.byte = 1;
    expect(await bus.readByte(0x48, 0)).toBe(1);
    expect(handle.closed).toBe(0);
  });
});

describe('openLinuxI2cBus', () => {
  let temp: Awaited<ReturnType<typeof makeTempDir>>;
  beforeEach(async () => {
    temp = await makeTempDir('i2c');
  });
  afterEach(async () => {
    await temp.remove();
  });

  it('names a missing adapter and how to enable it', async () => {
    const err = await rejection(openLinuxI2cBus({ id: 'i2c-1', device: join(temp.dir, 'i2c-1') }, { clock }));
    expect([err.code, err.errno]).toEqual(['ERR_HAL_NOT_FOUND', 'ENOENT']);
    expect(err.message).toContain('dtparam=i2c_arm=on');
  });

  it('refuses a device path that is not /dev/i2c-N', async () => {
    const err = await rejection(openLinuxI2cBus({ id: 'i2c-1', device: '/dev/spidev0.0' }, { clock }));
    expect(err.code).toBe('ERR_HAL_INVALID_ARG');
    expect(err.message).toContain('"/dev/spidev0.0"');
  });

  it('turns a missing i2c-bus package into ERR_HAL_UNSUPPORTED naming it', async () => {
    const device = join(temp.dir, 'i2c-1');
    await writeFile(device, '');
    const err = await rejection(openLinuxI2cBus({ id: 'i2c-1', device }, { clock, load: importPackage('i2c-bus-missing') }));
    expect(err.code).toBe('ERR_HAL_UNSUPPORTED');
    expect(err.message).toContain('the Linux I2C backend needs the optional package i2c-bus');
    expect(err.message).toContain('npm install i2c-bus');
  });

  it('loads the real i2c-bus and maps the errno of its first real transfer', async () => {
    // No I2C adapter on this machine: the stand-in path passes the access check, and the real
    // package then opens /dev/i2c-4093 on the first transfer.
    const device = join(temp.dir, 'i2c-4093');
    await writeFile(device, '');
    const real = await openLinuxI2cBus({ id: 'i2c-x', device, timeoutMs: 500 }, { clock: systemClock });
    expect(real.defaultTimeoutMs).toBe(500);
    const err = await rejection(real.readByte(0x48, 0));
    expect([err.code, err.errno, err.target]).toEqual(['ERR_HAL_NOT_FOUND', 'ENOENT', 'i2c-x@0x48']);
    expect(err.message).toContain('/dev/i2c-4093');
    await real.close();
  });
});
