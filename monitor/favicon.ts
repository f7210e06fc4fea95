/**
 * The dashboard's icon, so that a browser's request for `/favicon.ico` finds one: a 32 x 32 ICO with
 * one 32-bit BMP image (Microsoft's ICO format: ICONDIR, one ICONDIRENTRY, a BITMAPINFOHEADER of
 * twice the height for the colour and AND masks, rows bottom-up in BGRA), drawn here rather than kept
 * as a binary file: a ring in the dashboard's `up` colour around a dot, anti-aliased through alpha.
 */
const size = 32;

function draw(): Buffer {
  const pixels = Buffer.alloc(size * size * 4);
  const [r, g, b] = [0x00, 0x9e, 0x73];
  const c = (size - 1) / 2;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const d = Math.hypot(x - c, y - c);
      // Coverage of the ring (radius 11.5 to 15.5) and of the dot (radius 6), one pixel of edge each.
      const ring = Math.min(Math.max(0, Math.min(15.5 - d, d - 11.5) + 0.5), 1);
      const dot = Math.min(Math.max(0, 6 - d + 0.5), 1);
      const alpha = Math.max(ring, dot);
      const at = ((size - 1 - y) * size + x) * 4;
      pixels[at] = b;
      pixels[at + 1] = g;
      pixels[at + 2] = r;
      pixels[at + 3] = Math.round(alpha * 255);
    }
  }
  return pixels;
}

function ico(): Buffer {
  const pixels = draw();
  // One bit per pixel, rows padded to 32 bits; all zero, the alpha channel decides.
  const mask = Buffer.alloc((size / 8) * size);
  const header = Buffer.alloc(40);
  header.writeUInt32LE(40, 0);
  header.writeInt32LE(size, 4);
  header.writeInt32LE(size * 2, 8);
  header.writeUInt16LE(1, 12);
  header.writeUInt16LE(32, 14);
  header.writeUInt32LE(pixels.length + mask.length, 20);
  const image = Buffer.concat([header, pixels, mask]);
  const dir = Buffer.alloc(6 + 16);
  dir.writeUInt16LE(0, 0);
  dir.writeUInt16LE(1, 2);
  dir.writeUInt16LE(1, 4);
  dir.writeUInt8(size, 6);
  dir.writeUInt8(size, 7);
  dir.writeUInt16LE(1, 10);
  dir.writeUInt16LE(32, 12);
  dir.writeUInt32LE(image.length, 14);
  dir.writeUInt32LE(dir.length, 18);
  return Buffer.concat([dir, image]);
}

export const faviconIco: Buffer = ico();
