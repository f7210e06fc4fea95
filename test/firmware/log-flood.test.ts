/**
 * A client can make the firmware log at will: garbage on the Modbus port used to cost a 1 KB warning
 * with a stack trace per connection (147 MB from a 60 s flood). It costs one line per 10 s now,
 * without a stack, counting the connections in between.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { applianceConfig, fate, open, startAppliance } from './helpers.js';

describe('log amplification', () => {
  it('a flood of connections that are not Modbus TCP writes one summarised line, no stack', async () => {
    const lines: string[] = [];
    const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(line) });
    const { appliance, port } = await startAppliance(applianceConfig(), { logger });
    try {
      for (let i = 0; i < 40; i++) {
        const socket = await open(port);
        socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
        expect(await fate(socket, 2000)).toBe('closed');
        socket.destroy();
      }
      const notModbus = lines.filter((line) => line.includes('not Modbus TCP'));
      expect(notModbus).toHaveLength(1);
      expect(notModbus[0]).not.toContain('stack');
      expect(notModbus[0]!.length).toBeLessThan(400);
      expect(JSON.parse(notModbus[0]!)).toMatchObject({ level: 40, code: 'ERR_MODBUS_FRAME' });
    } finally {
      await appliance.stop();
    }
  });
});
