/**
 * The HAL contract suite (test/contract/suites.ts) - the one a Pi owner runs with HANDCHECK_HW_BOARD -
 * against the VM's real devices through LinuxBoard: the lane's board entry (test/kernel/vm-board.ts),
 * i2c-stub, gpio-sim through the character device, ttyS1 under the 8250 driver, softdog, virtio eth0.
 */
import { afterAll, describe, it } from 'vitest';
import { parseBoards, selectBoard } from '../../../config/boards.js';
import { LinuxBoard } from '../../../hal/linux/board.js';
import { halContract } from '../../contract/suites.js';
import { describeInLane, inLane } from '../in-guest.js';
import { setUpVmBoard } from '../vm-board.js';

if (inLane) {
  // The contract decides what to run from the entry, so the devices are set up while the file loads.
  const vm = await setUpVmBoard();
  const config = selectBoard(parseBoards(JSON.stringify(vm.boards), 'test/kernel/vm-board.ts'), 'vm');
  describe('HAL contract on the kernel lane VM', () => {
    afterAll(() => vm.remove());
    halContract(async () => new LinuxBoard(config), config);
  });
} else {
  describeInLane('HAL contract on the kernel lane VM', () => it.skip('needs the VM devices', () => undefined));
}
