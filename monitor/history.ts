/**
 * Every transition, in SQLite (better-sqlite3): written synchronously as it happens (transitions are
 * rare next to probes, and a WAL append costs microseconds), kept for `retentionDays`, read back after
 * a restart so the monitor continues from the last state it recorded.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { MonitorHistoryError } from './errors.js';
import { type TargetState, type Transition, targetStates } from './state.js';

const schemaVersion = 1;
const hourMs = 3_600_000;

interface Row {
  target: string;
  at: number;
  from_state: string;
  to_state: string;
  reason: string;
  connect_ms: number | null;
}

function transitionOf(row: Row): Transition {
  return { target: row.target, at: row.at, from: row.from_state as TargetState, to: row.to_state as TargetState, reason: row.reason, connectMs: row.connect_ms ?? undefined };
}

export interface HistoryOptions {
  /** Transitions older than this are deleted at open and every hour. Default 30 days. */
  retentionDays?: number;
  /** Only read a database a monitor wrote (`monitor history`): never create one, take no lock. */
  readOnly?: boolean;
  /** For tests: the wall clock. */
  now?: () => number;
}

/** An SQLite failure as an error naming the file and SQLite's code (SQLITE_CORRUPT, SQLITE_NOTADB, ...). */
function sqliteError(file: string, doing: string, err: unknown): MonitorHistoryError {
  const code = (err as { code?: string }).code;
  return new MonitorHistoryError(file, `${doing}: ${code ? `${code}: ` : ''}${(err as Error).message}`, { cause: err });
}

/**
 * One monitor per database: the writer holds an exclusive SQLite lock on `FILE.lock` for as long as
 * it runs. The lock is the kernel's (fcntl), so it goes with the process however that ends, and
 * readers of the database itself are never blocked.
 */
function takeLock(file: string): Database.Database {
  let lock: Database.Database | undefined;
  try {
    lock = new Database(`${file}.lock`, { timeout: 0 });
    lock.pragma('locking_mode = EXCLUSIVE');
    lock.exec('BEGIN EXCLUSIVE');
    return lock;
  } catch (err) {
    lock?.close();
    if ((err as { code?: string }).code === 'SQLITE_BUSY') {
      throw new MonitorHistoryError(file, `another monitor is using this history database (it holds ${file}.lock); give each monitor its own --db`, { cause: err });
    }
    throw sqliteError(`${file}.lock`, 'cannot take the history lock', err);
  }
}

export class History {
  private readonly db: Database.Database;
  private readonly lock: Database.Database | undefined;
  private readonly insert: Database.Statement | undefined;
  private readonly pruneTimer: NodeJS.Timeout | undefined;
  private readonly retentionMs: number;
  private readonly now: () => number;
  private closed = false;

  private constructor(
    readonly file: string,
    options: HistoryOptions,
  ) {
    this.retentionMs = (options.retentionDays ?? 30) * 24 * hourMs;
    this.now = options.now ?? Date.now;
    const readOnly = options.readOnly ?? false;
    if (readOnly && !existsSync(file)) throw new MonitorHistoryError(file, 'no such history database (give the --db FILE a monitor writes; reading one creates none)');
    this.lock = readOnly || file === ':memory:' ? undefined : takeLock(file);
    try {
      this.db = new Database(file, { readonly: readOnly, fileMustExist: readOnly });
      if (!readOnly) {
        this.db.pragma('journal_mode = WAL');
        this.db.pragma('synchronous = NORMAL');
      }
      const version = this.db.pragma('user_version', { simple: true }) as number;
      if (version !== 0 && version !== schemaVersion) {
        this.db.close();
        throw new MonitorHistoryError(file, `history schema version ${version}; this monitor knows version ${schemaVersion}`);
      }
      if (!readOnly) {
        this.db.exec(`
          CREATE TABLE IF NOT EXISTS transitions (
            id INTEGER PRIMARY KEY,
            target TEXT NOT NULL,
            at INTEGER NOT NULL,
            from_state TEXT NOT NULL,
            to_state TEXT NOT NULL,
            reason TEXT NOT NULL,
            connect_ms REAL
          );
          CREATE INDEX IF NOT EXISTS transitions_target_at ON transitions (target, at);
          CREATE INDEX IF NOT EXISTS transitions_at ON transitions (at);
        `);
        this.db.pragma(`user_version = ${schemaVersion}`);
        this.insert = this.db.prepare('INSERT INTO transitions (target, at, from_state, to_state, reason, connect_ms) VALUES (?, ?, ?, ?, ?, ?)');
      }
    } catch (err) {
      this.lock?.close();
      if (err instanceof MonitorHistoryError) throw err;
      throw sqliteError(file, 'cannot open the history database', err);
    }
    if (!readOnly) {
      this.prune();
      this.pruneTimer = setInterval(() => {
        try {
          this.prune();
        } catch {
          // A failing database fails the next write too, which is logged with the file and the code.
        }
      }, hourMs).unref();
    }
  }

  /** The open database, for what the monitor keeps beside the history (the alert outbox). */
  get database(): Database.Database {
    return this.db;
  }

  /**
   * When the target's current episode of being down began: its last transition to a fault from `up`,
   * `unknown` (a first result that was down) or `reboot-loop` (a loop that ended on a fault);
   * undefined when none is recorded.
   */
  episodeStart(target: string): number | undefined {
    const row = this.db
      .prepare(
        "SELECT at FROM transitions WHERE target = ? AND from_state IN ('up', 'unknown', 'reboot-loop') AND to_state NOT IN ('up', 'unknown', 'reboot-loop') ORDER BY at DESC, id DESC LIMIT 1",
      )
      .get(target) as { at: number } | undefined;
    return row?.at;
  }

  /** The target's last transition into `state` from another (a reboot recorded within it is no entry); undefined when never. */
  entered(target: string, state: TargetState): Transition | undefined {
    const row = this.db
      .prepare('SELECT target, at, from_state, to_state, reason, connect_ms FROM transitions WHERE target = ? AND to_state = ? AND from_state != to_state ORDER BY at DESC, id DESC LIMIT 1')
      .get(target, state) as Row | undefined;
    return row && transitionOf(row);
  }

  /** Opens the history at `file` (creating it unless `readOnly`); `:memory:` keeps it for this process only. */
  static open(file: string, options: HistoryOptions = {}): History {
    return new History(file, options);
  }

  /** Runs a query, turning SQLite's failure (a corrupted file) into an error that names the file. */
  private guard<T>(doing: string, query: () => T): T {
    try {
      return query();
    } catch (err) {
      throw sqliteError(this.file, doing, err);
    }
  }

  record(transition: Transition): void {
    if (!targetStates.includes(transition.to)) throw new MonitorHistoryError(this.file, `refusing to record unknown state "${transition.to}" for ${transition.target}`);
    if (!this.insert) throw new MonitorHistoryError(this.file, 'opened read-only');
    const insert = this.insert;
    this.guard('cannot record a transition', () => insert.run(transition.target, transition.at, transition.from, transition.to, transition.reason, transition.connectMs ?? null));
  }

  /** The newest `limit` transitions of one target, oldest first. */
  forTarget(target: string, options: { limit?: number; sinceMs?: number } = {}): Transition[] {
    const rows = this.guard('cannot read the history', () =>
      this.db
        .prepare('SELECT target, at, from_state, to_state, reason, connect_ms FROM transitions WHERE target = ? AND at >= ? ORDER BY at DESC, id DESC LIMIT ?')
        .all(target, options.sinceMs ?? 0, options.limit ?? 1000),
    ) as Row[];
    return rows.reverse().map(transitionOf);
  }

  /** Every target's transitions since `sinceMs` (newest `limit` overall), oldest first. */
  since(sinceMs: number, limit = 50_000): Transition[] {
    const rows = this.guard('cannot read the history', () =>
      this.db.prepare('SELECT target, at, from_state, to_state, reason, connect_ms FROM transitions WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?').all(sinceMs, limit),
    ) as Row[];
    return rows.reverse().map(transitionOf);
  }

  /** The last recorded transition of every target. */
  lastStates(): Map<string, Transition> {
    const rows = this.guard('cannot read the last states', () =>
      this.db
        .prepare(
          'SELECT t.target, t.at, t.from_state, t.to_state, t.reason, t.connect_ms FROM transitions t WHERE t.id = (SELECT id FROM transitions u WHERE u.target = t.target ORDER BY at DESC, id DESC LIMIT 1)',
        )
        .all(),
    ) as Row[];
    return new Map(rows.map((row) => [row.target, transitionOf(row)]));
  }

  /** Deletes transitions older than the retention; returns how many went. */
  prune(): number {
    if (this.closed || !this.insert) return 0;
    return this.guard('cannot prune the history', () => this.db.prepare('DELETE FROM transitions WHERE at < ?').run(this.now() - this.retentionMs).changes);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.pruneTimer);
    this.db.close();
    this.lock?.close();
  }
}
