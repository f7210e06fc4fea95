/**
 * Limits wrong token guesses per client address: a bucket of `burst` guesses refilled at one per
 * `refillMs`. An empty bucket refuses every attempt of that address, right token or not, until it
 * refills, so a guesser learns nothing at a faster rate. The table is bounded: when full, the
 * addresses that have refilled are forgotten, and if none has, all addresses share one bucket.
 */
export interface GuessLimiterOptions {
  burst?: number;
  refillMs?: number;
  /** Most addresses tracked at once. */
  maxAddresses?: number;
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

const shared = '*';

export class GuessLimiter {
  private readonly burst: number;
  private readonly refillMs: number;
  private readonly maxAddresses: number;
  private readonly now: () => number;
  private readonly buckets = new Map<string, Bucket>();

  constructor(options: GuessLimiterOptions = {}) {
    this.burst = options.burst ?? 10;
    this.refillMs = options.refillMs ?? 1000;
    this.maxAddresses = options.maxAddresses ?? 1024;
    this.now = options.now ?? (() => performance.now());
  }

  private refilled(bucket: Bucket): Bucket {
    const now = this.now();
    const gained = Math.floor((now - bucket.at) / this.refillMs);
    if (gained <= 0) return bucket;
    const tokens = Math.min(this.burst, bucket.tokens + gained);
    return { tokens, at: tokens === this.burst ? now : bucket.at + gained * this.refillMs };
  }

  private key(address: string): string {
    if (this.buckets.has(address) || this.buckets.size < this.maxAddresses) return address;
    for (const [key, bucket] of this.buckets) if (this.refilled(bucket).tokens === this.burst) this.buckets.delete(key);
    return this.buckets.size < this.maxAddresses ? address : shared;
  }

  /** Milliseconds until `address` may try again; 0 when it may try now. */
  retryAfterMs(address: string): number {
    const bucket = this.buckets.get(this.key(address));
    if (!bucket) return 0;
    const current = this.refilled(bucket);
    return current.tokens > 0 ? 0 : Math.max(1, current.at + this.refillMs - this.now());
  }

  /** Counts one wrong guess from `address`. */
  failed(address: string): void {
    const key = this.key(address);
    const bucket = this.buckets.get(key);
    const current = bucket ? this.refilled(bucket) : { tokens: this.burst, at: this.now() };
    this.buckets.set(key, { tokens: Math.max(0, current.tokens - 1), at: current.at });
  }
}
