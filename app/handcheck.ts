#!/usr/bin/env -S node --max-semi-space-size=1 --optimize-for-size
/**
 * The `handcheck` executable. The V8 flags on the first line (also in `npm start` and the systemd
 * unit) keep the young generation small and the heap from growing for speed, which holds the firmware
 * near 70 MB resident instead of 100 MB after a burst of connections (BENCHMARKS.md).
 */
import { main } from './cli.js';

process.exitCode = await main(process.argv.slice(2));
