/**
 * Which boot of the board the firmware runs in. A firmware restart (a crash, `systemctl restart`)
 * keeps the boot's identity; only a reboot of the board changes it, so the boot record can count
 * reboots rather than process starts.
 */

export interface BootIdentity {
  /**
   * Changes at every boot of the board and at no other time: on Linux the kernel's
   * /proc/sys/kernel/random/boot_id (a random UUID made once per boot), on the sim board one made at
   * power-on and at each reset.
   */
  id: string;
  /** Board-clock ms at which the board booted. */
  bootedAt: number;
  /**
   * True where the board knows this boot began with power applied (the sim board when it is built);
   * absent where it cannot tell, as on a Pi, where a power cut leaves no trace.
   */
  powerOn?: boolean;
}
