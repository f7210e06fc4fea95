/**
 * An original LM75 at register level: a 3-bit pointer (so the register file repeats every 8
 * addresses), 9-bit temperature, THYST and TOS words, an 8-bit configuration byte, and pointers
 * 04h-07h that answer with the last byte read, which is what the Linux detect routine relies on.
 */
import { LM75_CONF, LM75_CONVERSION_TYPICAL_MS, LM75_LSB_C, LM75_REG } from '../../hal/drivers/lm75.js';
import { type ChipContext, Quantity, valueFaultKinds } from './context.js';
import { WordRegisterModel } from './registers.js';

/** A clone with resolution bits in the configuration byte (TMP75 at 12 bits), which LM75 detection rejects. */
const WRONG_IDENTITY_CONFIG = 0x60;
const LIMIT_MASK = 0xff80;

export class Lm75Model extends WordRegisterModel {
  readonly temperatureC: Quantity;
  protected readonly registerCount = 4;
  private config = 0;
  private thyst = 0x4b00;
  private tos = 0x5000;
  private lastByte = 0;
  /** The temperature the register holds while shut down, and until the first conversion after it ends. */
  private frozenC: number | undefined;
  private thawAt: number | undefined;

  constructor(private readonly ctx: ChipContext) {
    super();
    this.temperatureC = new Quantity(ctx, 'temperatureC', 25, 127);
    ctx.faults.register(ctx.id, valueFaultKinds);
  }

  override write(data: Buffer): void {
    if (data.length === 0) return;
    this.pointer = data[0]! & 0x07;
    if (this.pointer === LM75_REG.config) {
      if (data.length >= 2) this.setConfig(data[1]!);
    } else if (data.length >= 3 && this.pointer < this.registerCount) {
      this.writeRegister(this.pointer, data.readUInt16BE(1));
    }
  }

  override read(length: number): Buffer {
    const out = Buffer.alloc(length, this.lastByte);
    if (this.pointer === LM75_REG.config) {
      out.fill(this.configByte());
    } else if (this.pointer < this.registerCount) {
      const word = this.readRegister(this.pointer);
      for (let i = 0; i < length; i++) out[i] = i % 2 === 0 ? word >> 8 : word & 0xff;
    }
    if (length > 0) this.lastByte = out[length - 1]!;
    return out;
  }

  private configByte(): number {
    if (this.ctx.faults.hit(this.ctx.id, 'wrong-identity')) return WRONG_IDENTITY_CONFIG;
    return this.config;
  }

  private setConfig(value: number): void {
    const wasShutdown = (this.config & LM75_CONF.SHUTDOWN) !== 0;
    this.config = value & ~LM75_CONF.UNUSED & 0xff;
    const shutdown = (this.config & LM75_CONF.SHUTDOWN) !== 0;
    if (shutdown && !wasShutdown) {
      this.frozenC = this.temperatureC.get();
      this.thawAt = undefined;
    }
    if (!shutdown && wasShutdown) this.thawAt = this.ctx.clock.now() + LM75_CONVERSION_TYPICAL_MS;
  }

  private heldC(): number | undefined {
    if (this.thawAt !== undefined && this.ctx.clock.now() >= this.thawAt) {
      this.frozenC = undefined;
      this.thawAt = undefined;
    }
    return this.frozenC;
  }

  protected readRegister(register: number): number {
    switch (register) {
      case LM75_REG.temperature: {
        const celsius = this.heldC() ?? this.temperatureC.get();
        const counts = Math.max(-256, Math.min(255, Math.round(celsius / LM75_LSB_C)));
        return (counts << 7) & 0xffff;
      }
      case LM75_REG.thyst:
        return this.thyst;
      case LM75_REG.tos:
        return this.tos;
      default:
        return (this.config << 8) | this.config;
    }
  }

  protected writeRegister(register: number, value: number): void {
    if (register === LM75_REG.thyst) this.thyst = value & LIMIT_MASK;
    else if (register === LM75_REG.tos) this.tos = value & LIMIT_MASK;
  }
}
