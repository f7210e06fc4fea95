/**
 * What a Linux controller (GPIO, serial) has opened: a handle opened after the controller closed is
 * closed again and refused, and closing the controller closes every handle, newest first, reporting
 * the first failure after trying them all.
 */
import { HalClosedError } from '../errors.js';

interface Closable {
  close(): Promise<void>;
}

export class Opened<T extends Closable> {
  private readonly handles = new Set<T>();
  private closed = false;

  /**
   * @param what the controller, for messages ("GPIO controller")
   * @param track receives each handle's close, so a board can close everything in reverse order
   */
  constructor(
    private readonly what: string,
    private readonly track?: (close: () => Promise<void>) => void,
  ) {}

  /** ERR_HAL_CLOSED (`canceled`) once the controller closed. */
  refuseIfClosed(target: string): void {
    if (this.closed) throw new HalClosedError(`open ${target} on a closed ${this.what}`, { target, canceled: true });
  }

  /** Keeps a freshly opened handle, or closes it and refuses when the controller closed meanwhile. */
  async adopt(handle: T, target: string): Promise<T> {
    if (this.closed) {
      await handle.close();
      throw new HalClosedError(`open ${target}: the ${this.what} closed meanwhile`, { target, canceled: true });
    }
    this.handles.add(handle);
    this.track?.(() => handle.close());
    return handle;
  }

  /** Closes every handle, newest first; resolves with the first failure instead of throwing it. */
  async closeAll(): Promise<unknown> {
    this.closed = true;
    const handles = [...this.handles].reverse();
    this.handles.clear();
    let first: unknown;
    for (const handle of handles) await handle.close().catch((err: unknown) => (first ??= err));
    return first;
  }
}
