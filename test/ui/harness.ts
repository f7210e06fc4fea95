import { type IncomingMessage, request } from 'node:http';
import { type Socket, connect } from 'node:net';
import type { Appliance } from '../../app/appliance.js';
import { applianceConfig, fate, startAppliance } from '../firmware/helpers.js';
import { freePort } from '../helpers/ports.js';

export interface PageAppliance {
  appliance: Appliance;
  /** Modbus TCP port. */
  port: number;
  base: string;
}

/** The sim appliance with its control endpoint (and so the page) on 127.0.0.1, port 0. */
export async function startPageAppliance(options: { token?: string } = {}): Promise<PageAppliance> {
  const { appliance, port } = await startAppliance(applianceConfig(), { control: '127.0.0.1:0', controlToken: options.token });
  const control = appliance.controlAddress!;
  return { appliance, port, base: `http://${control.host}:${control.port}` };
}

export interface SseEvent {
  event: string;
  data: unknown;
}

/** A server-sent event stream read over a real HTTP connection, event by event. */
export class EventStream {
  private buffer = '';
  private readonly queue: SseEvent[] = [];
  private waiter: (() => void) | undefined;
  private constructor(private readonly response: IncomingMessage) {
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => {
      this.buffer += chunk;
      let end: number;
      while ((end = this.buffer.indexOf('\n\n')) >= 0) {
        const block = this.buffer.slice(0, end);
        this.buffer = this.buffer.slice(end + 2);
        const lines = block.split('\n');
        const event = lines.find((l) => l.startsWith('event: '))?.slice(7);
        const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
        if (event) this.queue.push({ event, data: JSON.parse(data) });
      }
      this.waiter?.();
    });
  }

  static open(url: string, headers: Record<string, string> = {}): Promise<{ stream: EventStream; response: IncomingMessage }> {
    return new Promise((resolve, reject) => {
      const req = request(url, { headers: { accept: 'text/event-stream', ...headers } }, (response) => resolve({ stream: new EventStream(response), response }));
      req.once('error', reject);
      req.end();
    });
  }

  /** Resolves with the first event, from now on or already queued, that `match` accepts; earlier ones are dropped. */
  async next<T = unknown>(event: string, match: (data: T) => boolean = () => true, timeoutMs = 10_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      while (this.queue.length > 0) {
        const item = this.queue.shift()!;
        if (item.event === event && match(item.data as T)) return item.data as T;
      }
      if (Date.now() > deadline) throw new Error(`no "${event}" event matching within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, deadline - Date.now()) + 1);
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  close(): void {
    this.response.destroy();
  }
}

/** The only body type the endpoint takes as JSON. */
export const jsonType = { 'content-type': 'application/json' };

export async function json(response: Response): Promise<{ status: number; body: Record<string, unknown> }> {
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}


/**
 * A client connection from a known local port, so the test can find it in the gate's decisions even
 * when the RST arrives before Node reports the connect. Resolves with what became of it within `ms`.
 */
export async function client(port: number, ms: number): Promise<{ peer: string; result: 'reset' | 'closed' | 'open'; socket: Socket }> {
  const localPort = await freePort();
  const socket = connect({ host: '127.0.0.1', port, localAddress: '127.0.0.1', localPort });
  const result = await new Promise<'reset' | 'closed' | 'open'>((resolve, reject) => {
    const early = (err: NodeJS.ErrnoException): void => (err.code === 'ECONNRESET' ? resolve('reset') : reject(err));
    socket.once('error', early);
    socket.once('connect', () => {
      socket.off('error', early);
      resolve(fate(socket, ms));
    });
  });
  return { peer: `127.0.0.1:${localPort}`, result, socket };
}
