/**
 * A small HTTP service guarded by handcheck's gate on the simulated appliance: every connection is
 * admitted only when the board's temperature sensors and the service's own check are healthy, and is
 * reset otherwise - so a load balancer or monitor learns of a fault from the connect itself.
 *
 *   node http-service.js [PORT]      (after tsc; prints the URL it serves)
 *
 * GET /temperature answers the board sensor's last reading; POST /drain makes the service's own check
 * fail, so that new connections are reset while the ones held finish (a maintenance drain).
 */
import { createServer } from 'node:http';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { type Gate, type OpenedBoard, DeviceStateManager, createGate, loadBoards, openBoard, selectBoard, shippedBoardsFile } from 'handcheck';

export interface Example {
  url: string;
  board: OpenedBoard;
  devices: DeviceStateManager;
  gate: Gate;
  close(): Promise<void>;
}

export async function startExample(port = 0, logger = pino()): Promise<Example> {
  const board = await openBoard(selectBoard(await loadBoards(shippedBoardsFile), 'sim-appliance'));
  const devices = new DeviceStateManager({ board: board.hal, logger: logger.child({ subsystem: 'devices' }) });
  await devices.diagnose();
  devices.startRefresh(2000);

  let draining = false;
  const api = createServer((request, response) => {
    if (request.method === 'POST' && request.url === '/drain') {
      draining = true;
      response.writeHead(202).end();
      return;
    }
    if (request.method === 'GET' && request.url === '/temperature') {
      const { state, reading } = devices.state('board-temp');
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ state, temperatureC: reading?.temperatureC }));
      return;
    }
    response.writeHead(404).end();
  });

  const gate = createGate({
    service: 'http-api',
    devices,
    dependsOn: ['board-temp', 'ambient'],
    checks: { drain: () => (draining ? { ok: false, code: 'ERR_DRAINING', reason: 'draining for maintenance' } : { ok: true }) },
    server: api,
    logger,
  });
  const address = await gate.listen('127.0.0.1', port);
  return {
    url: `http://127.0.0.1:${address.port}`,
    board,
    devices,
    gate,
    async close() {
      await gate.close();
      api.close();
      await devices.close();
      await board.hal.close();
    },
  };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const example = await startExample(Number(process.argv[2] ?? 0));
  console.log(JSON.stringify({ url: example.url }));
  const stop = (): void => void example.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
