/**
 * A QEMU Machine Protocol client, just enough for the kernel lane: commands (set_link) and events
 * (WATCHDOG, RESET, SHUTDOWN) on QEMU's QMP unix socket.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
}

export class Qmp extends EventEmitter<{ event: [QmpEvent] }> {
  private readonly pending: { resolve: (value: unknown) => void; reject: (err: Error) => void }[] = [];

  constructor(private readonly socket: Socket) {
    super();
    createInterface({ input: socket }).on('line', (line) => {
      const message = JSON.parse(line) as { event?: string; return?: unknown; error?: { desc: string }; QMP?: unknown };
      if (message.QMP) return;
      if (message.event) {
        this.emit('event', message as QmpEvent);
        return;
      }
      const waiter = this.pending.shift();
      if (message.error) waiter?.reject(new Error(`QMP: ${message.error.desc}`));
      else waiter?.resolve(message.return);
    });
  }

  /** Over a socket QEMU connected; resolves once capabilities are negotiated. */
  static async over(socket: Socket): Promise<Qmp> {
    const qmp = new Qmp(socket);
    await qmp.execute('qmp_capabilities');
    return qmp;
  }

  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.pending.push({ resolve, reject });
      this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}
