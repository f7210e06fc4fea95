import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadNativeAddon, nativeAddonCandidates } from '../../hal/linux/native-addon.js';
import { requireOrSkip } from '../helpers/requirements.js';

const ENV = `HANDCHECK_TEST_ADDON_${process.pid}`;
const built = resolve(import.meta.dirname, '..', '..', 'native', 'build', 'Release');

afterEach(() => {
  delete process.env[ENV];
});

describe('native addon lookup', () => {
  it('looks in native/build/Release beside the sources and beside dist/ when the variable is unset', () => {
    const [source, dist] = nativeAddonCandidates('handcheck_x.node', ENV);
    expect(source).toBe(join(built, 'handcheck_x.node'));
    expect(dist).toBe(resolve(built, '..', '..', '..', '..', 'native', 'build', 'Release', 'handcheck_x.node'));
  });

  it('looks only where the variable points, resolved against the working directory', () => {
    process.env[ENV] = relative(process.cwd(), join(tmpdir(), 'elsewhere.node'));
    expect(nativeAddonCandidates('handcheck_x.node', ENV)).toEqual([join(tmpdir(), 'elsewhere.node')]);
  });

  it('loads the first candidate that exists: the built ioctl addon beside the sources', (ctx) => {
    const path = join(built, 'handcheck_ioctl.node');
    requireOrSkip(ctx, existsSync(path) ? undefined : 'the ioctl addon is not built (npm run build:native)');
    const addon = loadNativeAddon<{ wdtGetTimeout: unknown }>('handcheck_ioctl.node', ENV);
    expect(addon).toMatchObject({ state: 'loaded', path });
    expect(addon.state === 'loaded' && typeof addon.binding.wdtGetTimeout).toBe('function');
  });

  it('answers missing with the paths it looked for', () => {
    process.env[ENV] = '/nonexistent/handcheck_x.node';
    expect(loadNativeAddon('handcheck_x.node', ENV)).toEqual({ state: 'missing', lookedFor: ['/nonexistent/handcheck_x.node'] });
  });

  it('answers unloadable, with the loader\'s reason, for a file that is not a shared object', () => {
    const dir = mkdtempSync(join(tmpdir(), 'handcheck-addon-'));
    try {
      const path = join(dir, 'handcheck_x.node');
      writeFileSync(path, 'not an ELF file');
      process.env[ENV] = path;
      const addon = loadNativeAddon('handcheck_x.node', ENV);
      expect(addon).toMatchObject({ state: 'unloadable', path });
      expect(addon.state === 'unloadable' && addon.reason).toMatch(/invalid ELF header|file too short/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
