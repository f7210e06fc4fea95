/**
 * What the monitor last saw of each target's boot record, in its database next to the history: the
 * boot count, when that boot began, when the monitor last read it, and the reboots it has counted
 * within the reboot-loop window. Kept so that a monitor starting again compares the boot count it
 * reads with the one it saw last, and reports the reboots nobody watched; and so that a reboot loop
 * under way goes on counting across the restart. With no `--db` the database is in memory and a new
 * monitor process knows none of it.
 */
import type Database from 'better-sqlite3';

export interface SeenBoot {
  count: number;
  /** When that boot began (the read's time less the uptime), ms since the epoch. */
  bootedAt: number;
  /** When the monitor last read it, ms since the epoch. */
  seenAt: number;
  /** Times of the reboots counted toward a reboot loop, oldest first, ms since the epoch. */
  reboots: readonly number[];
}

interface Row {
  target: string;
  boot_count: number;
  booted_at: number;
  seen_at: number;
  reboots: string;
}

export class Boots {
  private readonly upsert: Database.Statement;
  private readonly select: Database.Statement;

  constructor(db: Database.Database) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS boots (
        target TEXT PRIMARY KEY,
        boot_count INTEGER NOT NULL,
        booted_at INTEGER NOT NULL,
        seen_at INTEGER NOT NULL,
        reboots TEXT NOT NULL
      );
    `);
    this.upsert = db.prepare(
      'INSERT INTO boots (target, boot_count, booted_at, seen_at, reboots) VALUES (?, ?, ?, ?, ?) ON CONFLICT (target) DO UPDATE SET boot_count = excluded.boot_count, booted_at = excluded.booted_at, seen_at = excluded.seen_at, reboots = excluded.reboots',
    );
    this.select = db.prepare('SELECT target, boot_count, booted_at, seen_at, reboots FROM boots WHERE target = ?');
  }

  get(target: string): SeenBoot | undefined {
    const row = this.select.get(target) as Row | undefined;
    if (!row) return undefined;
    const reboots = JSON.parse(row.reboots) as unknown;
    return {
      count: row.boot_count,
      bootedAt: row.booted_at,
      seenAt: row.seen_at,
      reboots: Array.isArray(reboots) ? reboots.filter((t): t is number => typeof t === 'number') : [],
    };
  }

  put(target: string, seen: SeenBoot): void {
    this.upsert.run(target, seen.count, seen.bootedAt, seen.seenAt, JSON.stringify(seen.reboots));
  }
}
