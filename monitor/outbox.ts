/**
 * What each alert sink is owed, in the monitor's database next to the history: one row per sink and
 * alert id holding the alert's newest version and whether that version has been delivered. Written
 * synchronously as it changes, so a monitor that stops (or is killed) with alerts undelivered sends
 * them when it starts again. A resolved alert, once delivered, leaves the outbox; a firing one stays
 * (delivered) until its resolution is, so a restarted monitor knows which sinks already heard of it.
 */
import type Database from 'better-sqlite3';
import type { Alert, AlertStatus } from './alerts.js';

export interface OutboxRow {
  sink: string;
  alert: Alert;
  /** The newest version still has to go out. */
  owed: boolean;
  /** The status the sink last took for this alert id. */
  delivered: AlertStatus | undefined;
}

interface Row {
  sink: string;
  alert: string;
  owed: number;
  delivered: string | null;
}

export class Outbox {
  private readonly upsert: Database.Statement;
  private readonly markDelivered: Database.Statement;
  private readonly remove: Database.Statement;

  constructor(private readonly db: Database.Database) {
    db.exec(`
      CREATE TABLE IF NOT EXISTS alert_outbox (
        seq INTEGER PRIMARY KEY,
        sink TEXT NOT NULL,
        alert_id TEXT NOT NULL,
        alert TEXT NOT NULL,
        owed INTEGER NOT NULL,
        delivered TEXT,
        UNIQUE (sink, alert_id)
      );
    `);
    this.upsert = db.prepare(
      'INSERT INTO alert_outbox (sink, alert_id, alert, owed, delivered) VALUES (?, ?, ?, ?, ?) ON CONFLICT (sink, alert_id) DO UPDATE SET alert = excluded.alert, owed = excluded.owed, delivered = excluded.delivered',
    );
    this.markDelivered = db.prepare('UPDATE alert_outbox SET owed = ?, delivered = ? WHERE sink = ? AND alert_id = ?');
    this.remove = db.prepare('DELETE FROM alert_outbox WHERE sink = ? AND alert_id = ?');
  }

  /** Every row of `sink`, oldest first (the order alerts were first raised in). */
  rows(sink: string): OutboxRow[] {
    return (this.db.prepare('SELECT sink, alert, owed, delivered FROM alert_outbox WHERE sink = ? ORDER BY seq').all(sink) as Row[]).map((row) => ({
      sink: row.sink,
      alert: JSON.parse(row.alert) as Alert,
      owed: row.owed === 1,
      delivered: (row.delivered ?? undefined) as AlertStatus | undefined,
    }));
  }

  /** Forgets what sinks no longer configured were owed. */
  keepOnly(sinks: readonly string[]): number {
    const placeholders = sinks.map(() => '?').join(', ');
    return this.db.prepare(`DELETE FROM alert_outbox WHERE sink NOT IN (${placeholders || "''"})`).run(...sinks).changes;
  }

  put(sink: string, alert: Alert, owed: boolean, delivered: AlertStatus | undefined): void {
    this.upsert.run(sink, alert.id, JSON.stringify(alert), owed ? 1 : 0, delivered ?? null);
  }

  delivered(sink: string, id: string, status: AlertStatus, stillOwed: boolean): void {
    if (status === 'resolved' && !stillOwed) this.remove.run(sink, id);
    else this.markDelivered.run(stillOwed ? 1 : 0, status, sink, id);
  }

  drop(sink: string, id: string): void {
    this.remove.run(sink, id);
  }
}
