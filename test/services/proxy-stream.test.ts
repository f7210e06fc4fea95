/**
 * A proxy where the splice(2) relay's addon is not built (as on a laptop without a compiler, or not on
 * Linux): the same semantics through stream pipes, and one line at start-up that says so.
 */
import { describe, expect, it } from 'vitest';
import { spliceCases } from './splice-cases.js';
import { startService } from './harness.js';
import { freePort } from '../helpers/ports.js';

// Read when each proxy service is made, after this module has run.
process.env.HANDCHECK_SPLICE_ADDON = '/nonexistent/handcheck_splice.node';

describe('proxy without the splice relay', () => {
  it('says once, when the service starts, that bytes go through JavaScript and how to build the relay', async () => {
    const r = await startService({ id: 'api', kind: 'proxy', listen: '127.0.0.1:0', upstream: `127.0.0.1:${await freePort()}`, connectTimeoutMs: 2000 });
    try {
      const lines = r.log.lines().filter((line) => line.relay === 'stream');
      expect(lines).toHaveLength(1);
      expect(lines[0]!.msg).toContain('npm run build:native');
    } finally {
      await r.stop();
    }
  });

  spliceCases('stream');
});
