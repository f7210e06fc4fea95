/**
 * Fake sysfs trees in a temp dir, laid out as Raspberry Pi OS Bookworm (kernel 6.6) shows them:
 * /sys/class/gpio/gpiochipN are symlinks into /sys/devices, whose `device` link leads to the
 * platform device and its device tree node.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';

export interface FakeChip {
  base: number;
  ngpio: number;
  label: string;
  /** Platform device directory name, e.g. `fe200000.gpio`. */
  device: string;
  /** gpio-line-names from the device tree; absent means the kernel exposes none. */
  lineNames?: string[];
}

/** Pi 4 Model B device tree names for the first 47 of pinctrl-bcm2711's 58 lines (bcm2711-rpi-4-b.dts). */
export const pi4LineNames = [
  'ID_SDA', 'ID_SCL', 'SDA1', 'SCL1', 'GPIO_GCLK', 'GPIO5', 'GPIO6', 'SPI_CE1_N', 'SPI_CE0_N', 'SPI_MISO',
  'SPI_MOSI', 'SPI_SCLK', 'GPIO12', 'GPIO13', 'TXD1', 'RXD1', 'GPIO16', 'GPIO17', 'GPIO18', 'GPIO19',
  'GPIO20', 'GPIO21', 'GPIO22', 'GPIO23', 'GPIO24', 'GPIO25', 'GPIO26', 'GPIO27', 'RGMII_MDIO', 'RGMIO_MDC',
  'CTS0', 'RTS0', 'TXD0', 'RXD0', 'SD1_CLK', 'SD1_CMD', 'SD1_DATA0', 'SD1_DATA1', 'SD1_DATA2', 'SD1_DATA3',
  'PWR_LED_OFF', 'GLOBAL_RESET', 'VDD_SD_IO_SEL', 'CAM_GPIO', 'SD_PWR_ON', 'SD_OC_N', '',
  '', '', '', '', '', '', '', '', '', '', '',
];

export const pi4Chips: FakeChip[] = [
  { base: 512, ngpio: 58, label: 'pinctrl-bcm2711', device: 'fe200000.gpio', lineNames: pi4LineNames },
  { base: 570, ngpio: 8, label: 'raspberrypi-exp-gpio', device: 'firmware:gpio' },
];

/** Pi 5 chips; here without device tree names, so line names go through the GPIO<n> rule. */
export const pi5Chips: FakeChip[] = [
  { base: 512, ngpio: 32, label: 'gpio-brcmstb@107d508500', device: '107d508500.gpio' },
  { base: 544, ngpio: 4, label: 'gpio-brcmstb@107d508520', device: '107d508500.gpio' },
  { base: 548, ngpio: 17, label: 'gpio-brcmstb@107d517c00', device: '107d517c00.gpio' },
  { base: 565, ngpio: 6, label: 'gpio-brcmstb@107d517c20', device: '107d517c00.gpio' },
  { base: 571, ngpio: 54, label: 'pinctrl-rp1', device: '1f000d0000.gpio' },
];

export async function makeTempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), `handcheck-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/** Lays out `<sys>/class/gpio` and `<sys>/devices/...`; returns the class/gpio path. */
export async function makeGpioTree(sys: string, chips: FakeChip[]): Promise<string> {
  const classDir = join(sys, 'class', 'gpio');
  await mkdir(classDir, { recursive: true });
  await writeFile(join(classDir, 'export'), '');
  await writeFile(join(classDir, 'unexport'), '');
  for (const chip of chips) {
    const deviceDir = join(sys, 'devices', 'platform', 'soc', chip.device);
    const chipDir = join(deviceDir, 'gpio', `gpiochip${chip.base}`);
    await mkdir(chipDir, { recursive: true });
    await writeFile(join(chipDir, 'label'), `${chip.label}\n`);
    await writeFile(join(chipDir, 'base'), `${chip.base}\n`);
    await writeFile(join(chipDir, 'ngpio'), `${chip.ngpio}\n`);
    await symlink(relative(chipDir, deviceDir), join(chipDir, 'device'));
    if (chip.lineNames) {
      const ofNode = join(deviceDir, 'of_node');
      await mkdir(ofNode, { recursive: true });
      await writeFile(join(ofNode, 'gpio-line-names'), chip.lineNames.map((n) => `${n}\0`).join(''));
    }
    const link = join(classDir, `gpiochip${chip.base}`);
    await symlink(relative(dirname(link), chipDir), link);
  }
  return classDir;
}
