/**
 * FC43/14 (read device identification) answers with the board's name as the ModelName object, which
 * the Modbus Application Protocol v1.1b3 (6.21, table "object id / object name") defines as ASCII. A
 * board named in another script used to make every FC43 request answer exception 04.
 */
import { describe, expect, it } from 'vitest';
import { applianceConfig, open, startAppliance } from '../firmware/helpers.js';

describe('device identification with a non-ASCII board name', () => {
  it('answers FC43 with the name in ASCII instead of exception 04', async () => {
    const { appliance, port } = await startAppliance(applianceConfig({}, (c) => ({ ...c, name: 'Kühlraum-Pumpe Nord 北 🔥' })));
    try {
      const socket = await open(port);
      // Transaction 9, unit 1, FC 0x2B MEI 0x0E, regular identification (02) from object 0.
      socket.write(Buffer.from('000900000005012b0e0200', 'hex'));
      const answer = await new Promise<Buffer>((resolve) => socket.once('data', resolve));
      socket.destroy();
      expect(answer[7]).toBe(0x2b);
      expect(answer.toString('latin1')).toContain('Kuhlraum-Pumpe Nord ? ??');
    } finally {
      await appliance.stop();
    }
  });
});
