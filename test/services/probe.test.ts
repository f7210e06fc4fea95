/**
 * The proxy's upstream probe against real servers: nginx (nginx-light) for the HTTP status of a path,
 * mosquitto for a send/expect pair (an MQTT 3.1.1 CONNECT and the CONNACK that accepts it, OASIS MQTT
 * 3.1.1 sections 3.1 and 3.2), a pymodbus server (python3-pymodbus) for a Modbus read; and the three
 * ways an upstream goes bad - nothing listening, accepting but silent, resetting - each its own code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { upstreamProbe } from '../../firmware/upstream-probe.js';
import type { ProbeConfig } from '../../config/board-config.js';
import { describeWhen } from '../helpers/requirements.js';
import { until } from '../helpers/wait.js';
import { freePort } from '../helpers/ports.js';
import { type Upstream, missing, pymodbusPython, resettingServer, silentServer, startMosquitto, startNginx, startPymodbus } from './upstreams.js';

function probe(port: number, config?: ProbeConfig): ReturnType<ReturnType<typeof upstreamProbe>> {
  return upstreamProbe({ host: '127.0.0.1', port }, config)(new AbortController().signal);
}

/** MQTT 3.1.1 CONNECT, clean session, keepalive 10 s, client id "hc". */
const MQTT_CONNECT = '100e00044d5154540402000a00026863';
/** CONNACK, session present 0, return code 0 (accepted). */
const MQTT_CONNACK = '20020000';

describe('upstream probe: the bad upstreams', () => {
  it('nothing listening: ERR_UPSTREAM_DOWN', async () => {
    expect(await probe(await freePort())).toMatchObject({ component: 'upstream', code: 'ERR_UPSTREAM_DOWN', reason: expect.stringContaining('ECONNREFUSED') as string });
  });

  it('accepts and stays silent: ERR_UPSTREAM_TIMEOUT for an answer, and its socket is gone after', async () => {
    const silent = await silentServer();
    try {
      expect(await probe(silent.port, { type: 'http', path: '/', timeoutMs: 50 })).toMatchObject({ code: 'ERR_UPSTREAM_TIMEOUT', reason: expect.stringContaining('no answer to HTTP GET / within 50 ms') as string });
      await until(() => silent.sockets.size === 0, 'the probe connection closed');
      // A connect alone is all a silent server gives; it passes a connect probe.
      expect(await probe(silent.port)).toBeUndefined();
    } finally {
      await silent.close();
    }
  });

  it('resets: ERR_UPSTREAM_RESET', async () => {
    const resetting = await resettingServer();
    try {
      expect(await probe(resetting.port, { type: 'send-expect', send: 'PING\r\n', expect: '+PONG' })).toMatchObject({ code: 'ERR_UPSTREAM_RESET' });
    } finally {
      await resetting.close();
    }
  });

  it('an aborted diagnosis ends the probe at once', async () => {
    const silent = await silentServer();
    try {
      const controller = new AbortController();
      const pending = upstreamProbe({ host: '127.0.0.1', port: silent.port }, { type: 'http', timeoutMs: 1500 })(controller.signal);
      controller.abort();
      expect(await pending).toMatchObject({ code: 'ERR_UPSTREAM_TIMEOUT', reason: expect.stringContaining('abandoned') as string });
    } finally {
      await silent.close();
    }
  });
});

describeWhen(missing('nginx', 'nginx-light'), 'upstream probe: HTTP status from nginx', () => {
  let nginx: Upstream;
  beforeAll(async () => {
    nginx = await startNginx({ bigBytes: 1024 });
  });
  afterAll(() => nginx?.stop());

  it('200 on /health is healthy; 404 and 503 are not, by default and with expectStatus', async () => {
    expect(await probe(nginx.port, { type: 'http', path: '/health' })).toBeUndefined();
    expect(await probe(nginx.port, { type: 'http', path: '/missing' })).toMatchObject({ code: 'ERR_UPSTREAM_ANSWER', reason: expect.stringContaining('status 404 Not Found, expected below 400') as string });
    expect(await probe(nginx.port, { type: 'http', path: '/broken' })).toMatchObject({ code: 'ERR_UPSTREAM_ANSWER' });
    expect(await probe(nginx.port, { type: 'http', path: '/broken', expectStatus: [503] })).toBeUndefined();
    expect(await probe(nginx.port, { type: 'http', path: '/health', expectStatus: [204] })).toMatchObject({ code: 'ERR_UPSTREAM_ANSWER', reason: expect.stringContaining('expected 204') as string });
  });

  it('a send/expect pair that nginx answers otherwise fails with what it said', async () => {
    expect(await probe(nginx.port, { type: 'send-expect', send: 'PING\r\n\r\n', expect: '+PONG' })).toMatchObject({ code: 'ERR_UPSTREAM_ANSWER', reason: expect.stringContaining('answered "HTTP/1.1 400') as string });
  });
});

describeWhen(missing('mosquitto', 'mosquitto'), 'upstream probe: send/expect with mosquitto', () => {
  let broker: Upstream;
  beforeAll(async () => {
    broker = await startMosquitto();
  });
  afterAll(() => broker?.stop());

  it('an MQTT CONNECT answered by CONNACK accepted is healthy; another CONNACK is not', async () => {
    expect(await probe(broker.port, { type: 'send-expect', send: MQTT_CONNECT, expect: MQTT_CONNACK, encoding: 'hex' })).toBeUndefined();
    expect(await probe(broker.port, { type: 'send-expect', send: MQTT_CONNECT, expect: '20020005', encoding: 'hex' })).toMatchObject({ code: 'ERR_UPSTREAM_ANSWER', reason: expect.stringContaining('0x20020000') as string });
  });
});

const python = pymodbusPython();
describeWhen(python ? undefined : 'pymodbus is not importable (apt-get install python3-pymodbus python3-serial-asyncio)', 'upstream probe: Modbus read from pymodbus', () => {
  let server: Upstream;
  beforeAll(async () => {
    server = await startPymodbus(python as string);
  });
  afterAll(() => server?.stop());

  it('a read of registers the server has is healthy; one past them is exception 02', async () => {
    expect(await probe(server.port, { type: 'modbus', function: 3, address: 0, count: 2 })).toBeUndefined();
    expect(await probe(server.port, { type: 'modbus', function: 4, address: 0, count: 1 })).toBeUndefined();
    expect(await probe(server.port, { type: 'modbus', function: 3, address: 500, count: 1 })).toMatchObject({
      code: 'ERR_UPSTREAM_ANSWER',
      reason: expect.stringContaining('Modbus exception 02 (illegal data address)') as string,
    });
  });
});
