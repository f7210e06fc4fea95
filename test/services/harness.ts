/**
 * The firmware on a sim board (virtual clock, moved only by settle) with one service of kind proxy or
 * guard in place of the board's Modbus server. The service depends on the power-good GPIO line, whose
 * diagnosis takes no board time, so verdicts come without moving the clock; a `stuck-low` fault on it
 * fails them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import type { BoardConfig, GatePolicyInput, ServiceConfig } from '../../config/board-config.js';
import { gatePolicy } from '../../config/gate-policy.js';
import { Firmware } from '../../firmware/firmware.js';
import { FirmwareMetrics } from '../../firmware/metrics.js';
import { ProxyService } from '../../firmware/proxy-service.js';
import { SimBoard } from '../../sim/board.js';
import { VirtualClock } from '../../sim/clock.js';
import { applianceConfig } from '../firmware/helpers.js';
import { type LogSink, logSink } from '../helpers/log.js';
import { settle } from '../helpers/settle.js';

export interface Running {
  firmware: Firmware;
  board: SimBoard;
  port: number;
  log: LogSink;
  proxy: ProxyService | undefined;
  stop(): Promise<void>;
}

export async function startService(service: Omit<ServiceConfig, 'gate' | 'dependsOn'> & { gate?: GatePolicyInput; dependsOn?: string[] }, level: pino.Level = 'info'): Promise<Running> {
  const { gate, dependsOn, ...rest } = service;
  const config: BoardConfig = applianceConfig({}, (c) => ({
    ...c,
    services: [{ ...rest, dependsOn: dependsOn ?? ['power-good'], gate: gatePolicy({ ...gate, ...(rest.kind === 'guard' ? { mode: 'before', reuse: 'never' } : {}) }) }],
  }));
  const board = new SimBoard(config, { clock: new VirtualClock(1_700_000_000_000) });
  const log = logSink(level);
  const stateDir = mkdtempSync(join(tmpdir(), `handcheck-services-${process.pid}-`));
  // The boot record is real file I/O, which a loaded machine can keep waiting while the virtual clock
  // runs on; nothing here depends on how far it runs before the first connection.
  const firmware = await settle(board.clock, Firmware.start({ board, logger: log.logger, metrics: new FirmwareMetrics({ board: config.id }), stateDir }), 1, 600_000);
  const running = firmware.services[0]!;
  return {
    firmware,
    board,
    port: running.port,
    log,
    proxy: running.handler instanceof ProxyService ? running.handler : undefined,
    stop: async () => {
      await firmware.stop({ magic: true });
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}
