/**
 * The last act of the kernel lane's first boot: the firmware on the VM board, with QEMU's i6300esb as
 * its watchdog (20 s) and its boot record in the lane's state directory, which outlives the reset, is
 * stopped with SIGSTOP once it serves. Nothing kicks any more, so i6300esb must reset the VM: the host
 * watches for QEMU's WATCHDOG event, and the second boot starts the firmware again on the same record
 * (test/kernel/after-reset). On a loaded machine the keeper itself may withhold kicks while it starts
 * (event-loop lag over 1 s under TCG) for long enough that the reset comes before the SIGSTOP - 10 s
 * did once at load 16 - which is the same watchdog resetting a firmware that stopped feeding it.
 * It is the Firmware on a LinuxBoard, as `handcheck run` makes it for a linux entry
 * (app/board-select.ts), without app/: that imports the sim board, whose @serialport/binding-mock
 * tsx cannot load outside vitest.
 */
import { join } from 'node:path';
import pino from 'pino';
import { parseBoards, selectBoard } from '../../config/boards.js';
import { Firmware } from '../../firmware/firmware.js';
import { FirmwareMetrics } from '../../firmware/metrics.js';
import { LinuxBoard } from '../../hal/linux/board.js';
import { setUpVmBoard } from './vm-board.js';

const vm = await setUpVmBoard({ watchdog: 'i6300esb', timeoutS: 20 });
const config = selectBoard(parseBoards(JSON.stringify(vm.boards), 'test/kernel/vm-board.ts'), 'vm');
const firmware = await Firmware.start({
  board: new LinuxBoard(config),
  logger: pino({ level: 'warn' }),
  metrics: new FirmwareMetrics({ board: config.id }),
  stateDir: join(process.env.HANDCHECK_LANE_STATE ?? '/tmp', 'firmware'),
});
const { watchdog, boot } = firmware.status();
if (watchdog?.health !== 'ok') throw new Error(`the firmware did not arm the watchdog: ${JSON.stringify(watchdog)}`);
process.stdout.write(`handcheck-lane: firmware stopped with SIGSTOP ${JSON.stringify({ watchdog: watchdog.reading, boot })}\n`);
process.kill(process.pid, 'SIGSTOP');
