/**
 * The second boot of the kernel lane, after i6300esb reset the VM under the firmware stopped with
 * SIGSTOP (test/kernel/starve.ts; the host saw QEMU's WATCHDOG event). i6300esb's probe reads the
 * ESB_WDT_TIMEOUT bit of its reload register, which QEMU's device keeps across the reset it caused,
 * and reports WDIOF_CARDRESET as boot status (esb_initdevice in drivers/watchdog/i6300esb.c). The
 * firmware starts again - the appliance `handcheck run` starts - on the boot record the first boot
 * left in the lane's state directory.
 */
import { join } from 'node:path';
import pino from 'pino';
import { expect, it } from 'vitest';
import { Appliance } from '../../../app/appliance.js';
import { parseBoards, selectBoard } from '../../../config/boards.js';
import { LinuxWatchdog } from '../../../hal/linux/watchdog.js';
import { WDIOF_CARDRESET } from '../../../hal/watchdog.js';
import { describeInLane, remoteClientSees } from '../in-guest.js';
import { guestModbus, setUpVmBoard } from '../vm-board.js';

describeInLane('after the watchdog reset', () => {
  it('the driver reports WDIOF_CARDRESET by WDIOC_GETBOOTSTATUS', async () => {
    const wd = new LinuxWatchdog('/dev/watchdog0');
    const info = await wd.open();
    await wd.close({ magic: true });
    expect(info.bootStatus).toBe(WDIOF_CARDRESET);
  });

  it('the firmware reports the watchdog reset in /status, /metrics and its log, counts the second boot, and a remote client is accepted again', { timeout: 0 }, async () => {
    // No time limit of its own (timeout 0): the appliance starts or fails, and the remote client's wait
    // ends on the result it wants (in-guest.ts `remoteClientSees`). Should that never come, or the VM
    // hang, the lane's hung-VM limit stops the run and names the last control-line request.
    const vm = await setUpVmBoard({ watchdog: 'i6300esb', timeoutS: 30 });
    const lines: Array<{ msg: string }> = [];
    const appliance = await Appliance.start({
      config: selectBoard(parseBoards(JSON.stringify(vm.boards), 'test/kernel/vm-board.ts'), 'vm'),
      logger: pino({}, { write: (line: string) => lines.push(JSON.parse(line) as { msg: string }) }),
      control: '127.0.0.1:0',
      stateDir: join(process.env.HANDCHECK_LANE_STATE ?? '/tmp', 'firmware'),
    });
    try {
      const control = `http://127.0.0.1:${appliance.controlAddress!.port}`;
      const status = (await (await fetch(`${control}/status`)).json()) as { boot: unknown; watchdog: unknown };
      // Boot 1 ran the end-to-end firmware and the starved one (one boot, one count); this is boot 2.
      expect(status.boot).toMatchObject({ count: 2, lastResetCause: 'watchdog', uncleanResets: 1 });
      expect(status.watchdog).toMatchObject({ health: 'ok', reading: { lastResetByWatchdog: true } });
      const metrics = await (await fetch(`${control}/metrics`)).text();
      expect(metrics).toMatch(/^handcheck_last_reset_cause\{cause="watchdog",board="vm"\} 1$/m);
      expect(metrics).toMatch(/^handcheck_boot_count\{board="vm"\} 2$/m);
      expect(metrics).toMatch(/^handcheck_watchdog_last_reset_by_watchdog\{component="watchdog",board="vm"\} 1$/m);
      expect(lines.map((line) => line.msg)).toContain("the last reset of this board was the watchdog's");
      expect(await remoteClientSees(guestModbus, ['up'])).toBe('up -');
    } finally {
      await appliance.stop({ magic: true });
      await vm.remove();
    }
  });
});
