/**
 * Load generator for the accept-rate benchmark, run as its own process so that client work does not
 * share the server's event loop: connects `total` times to HOST:PORT, `concurrency` at a time, waits
 * for each connection to be established and for the server's verdict window, then closes it.
 * Prints one JSON line: { rate, errors, errorCodes, p50Ms, p99Ms }.
 */
import { connectPool, pick } from './connect-pool.js';

const [host = '127.0.0.1', portText = '0', totalText = '10000', concurrencyText = '32'] = process.argv.slice(2);
const { latencies, errors, errorCodes, rate } = await connectPool(host, Number(portText), Number(totalText), Number(concurrencyText));
process.stdout.write(`${JSON.stringify({ rate, errors, errorCodes, p50Ms: pick(latencies, 0.5), p99Ms: pick(latencies, 0.99) })}\n`);
