/**
 * Finds a GPIO line's global sysfs number from its chip label and line name or offset, by reading
 * /sys/class/gpio/gpiochipN/{label,base,ngpio}. Global numbers are never written in a board file:
 * the kernel hands out chip bases at boot (Raspberry Pi OS Bookworm, kernel 6.6: pinctrl-bcm2711 at
 * 512 on a Pi 4, pinctrl-rp1 at 571 on a Pi 5; 0 on older kernels), so only label + offset is stable.
 *
 * Line names: sysfs has no per-line names (the kernel gives them only through the gpiochip character
 * device's GPIO_GET_LINEINFO ioctl, which Node cannot call). They are read instead from the device
 * tree property the kernel took them from, `gpiochipN/device/of_node/gpio-line-names`
 * (NUL-separated, one per offset). Where that is missing, or the name is not in it, a name of the form
 * `GPIO<n>` on a Raspberry Pi pin controller (pinctrl-bcm2835, pinctrl-bcm2711, pinctrl-rp1) means
 * offset n: on those chips the offset is the BCM GPIO number printed on pinout diagrams. The Pi 4's
 * device tree names some lines by function (offset 2 is `SDA1`, not `GPIO2`), so both forms work.
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  HalError,
  HalInvalidArgumentError,
  HalNotFoundError,
  HalPermissionError,
  HalUnsupportedError,
  errnoOf,
  halErrorFromErrno,
} from '../errors.js';
import { gpioTarget } from '../gpio.js';

export const defaultGpioRoot = '/sys/class/gpio';

/** Pin controllers whose offset n is the line the Raspberry Pi documentation calls GPIOn. */
export const raspberryPiGpioChips: readonly string[] = ['pinctrl-bcm2835', 'pinctrl-bcm2711', 'pinctrl-rp1'];

export interface GpioChipInfo {
  /** Directory name under the root, `gpiochip512`. */
  name: string;
  label: string;
  base: number;
  ngpio: number;
  /** Line names by offset from the device tree, when the kernel exposes them. */
  lineNames: string[] | undefined;
}

export interface ResolvedGpioLine {
  chip: GpioChipInfo;
  offset: number;
  /** The global sysfs number: chip base + offset. */
  number: number;
}

function accessError(err: unknown, what: string, path: string, target: string): HalError {
  if (errnoOf(err) === 'EACCES' || errnoOf(err) === 'EPERM') {
    return new HalPermissionError(
      `${what}: permission denied on ${path}; run as a member of the \`gpio\` group (sudo usermod -aG gpio $USER, then log in again)`,
      { target, errno: errnoOf(err), cause: err },
    );
  }
  return halErrorFromErrno(err, what, target);
}

async function readTrimmed(path: string): Promise<string> {
  return (await readFile(path, 'utf8')).trim();
}

async function readInteger(path: string, target: string): Promise<number> {
  const text = await readTrimmed(path);
  const value = Number(text);
  if (!Number.isInteger(value) || value < 0) {
    throw new HalNotFoundError(`${path} holds ${JSON.stringify(text)}, not a GPIO number`, { target });
  }
  return value;
}

async function readLineNames(chipDir: string): Promise<string[] | undefined> {
  try {
    const raw = await readFile(join(chipDir, 'device', 'of_node', 'gpio-line-names'), 'latin1');
    const names = raw.split('\0');
    if (names.at(-1) === '') names.pop();
    return names;
  } catch (err) {
    if (errnoOf(err) === 'ENOENT' || errnoOf(err) === 'ENOTDIR') return undefined;
    throw err;
  }
}

/** Every GPIO chip under `root`, ordered by base. */
export async function listGpioChips(root: string = defaultGpioRoot): Promise<GpioChipInfo[]> {
  let entries: string[];
  try {
    entries = await readdir(root);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') {
      throw new HalUnsupportedError(
        `${root} does not exist: this kernel has no sysfs GPIO interface (CONFIG_GPIO_SYSFS), which the onoff backend needs`,
        { target: root, errno: 'ENOENT', cause: err },
      );
    }
    throw accessError(err, 'listing GPIO chips', root, root);
  }
  const chips = await Promise.all(
    entries
      .filter((name) => /^gpiochip\d+$/.test(name))
      .map(async (name): Promise<GpioChipInfo> => {
        const dir = join(root, name);
        try {
          const [label, base, ngpio, lineNames] = await Promise.all([
            readTrimmed(join(dir, 'label')),
            readInteger(join(dir, 'base'), dir),
            readInteger(join(dir, 'ngpio'), dir),
            readLineNames(dir),
          ]);
          return { name, label, base, ngpio, lineNames };
        } catch (err) {
          throw accessError(err, 'reading GPIO chip', dir, dir);
        }
      }),
  );
  return chips.sort((a, b) => a.base - b.base);
}

function offsetFromName(chip: GpioChipInfo, name: string): number | undefined {
  const named = chip.lineNames?.indexOf(name) ?? -1;
  if (named >= 0) return named;
  const bcm = /^GPIO(\d+)$/.exec(name);
  if (bcm?.[1] !== undefined && raspberryPiGpioChips.includes(chip.label)) return Number(bcm[1]);
  return undefined;
}

/** Resolves `{ chip, line }` against the chips under `root`. */
export async function resolveGpioLine(
  spec: { chip: string; line: string | number },
  root: string = defaultGpioRoot,
): Promise<ResolvedGpioLine> {
  const target = gpioTarget(spec);
  const chips = await listGpioChips(root);
  const matching = chips.filter((c) => c.label === spec.chip);
  const chip = matching[0];
  if (chip === undefined) {
    const seen = chips.map((c) => `${c.label} (${c.name})`).join(', ') || 'none';
    throw new HalNotFoundError(`no GPIO chip labelled ${spec.chip} under ${root}; chips seen: ${seen}`, { target });
  }
  if (matching.length > 1) {
    throw new HalInvalidArgumentError(
      `GPIO chip label ${spec.chip} is ambiguous under ${root}: ${matching.map((c) => c.name).join(', ')}`,
      { target },
    );
  }
  let offset: number;
  if (typeof spec.line === 'number') {
    if (!Number.isInteger(spec.line) || spec.line < 0) {
      throw new HalInvalidArgumentError(`GPIO line offset ${spec.line} on ${spec.chip} is not a non-negative integer`, { target });
    }
    offset = spec.line;
  } else {
    const found = offsetFromName(chip, spec.line);
    if (found === undefined) {
      const known = chip.lineNames ? `line names: ${chip.lineNames.filter((n) => n !== '').join(', ')}` : 'the kernel exposes no line names for it';
      throw new HalNotFoundError(`GPIO chip ${spec.chip} (${chip.name}) has no line named ${spec.line}; ${known}`, { target });
    }
    offset = found;
  }
  if (offset >= chip.ngpio) {
    throw new HalNotFoundError(
      `GPIO line offset ${offset} is out of range for chip ${spec.chip} (${chip.name}, ngpio ${chip.ngpio}: offsets 0-${chip.ngpio - 1})`,
      { target },
    );
  }
  return { chip, offset, number: chip.base + offset };
}
