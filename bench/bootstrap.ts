/**
 * Medians and their percentile bootstrap confidence intervals, for benches that compare two sides
 * by many paired samples. The resampling is seeded, so a given set of samples always gives the same
 * interval.
 */

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** mulberry32: a small seeded generator, uniform in [0, 1). */
function generator(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function resample(values: readonly number[], random: () => number): number[] {
  return Array.from(values, () => values[Math.floor(random() * values.length)]!);
}

export interface Estimate {
  value: number;
  /** The 95% interval: 2.5th and 97.5th percentiles of the statistic over the resamples. */
  low: number;
  high: number;
}

/**
 * `statistic` of the samples, with a 95% percentile bootstrap interval: each of `groups` (one or
 * more independent sets of samples) is resampled with replacement `rounds` times.
 */
export function bootstrap(groups: ReadonlyArray<readonly number[]>, statistic: (groups: number[][]) => number, rounds = 2000, seed = 1): Estimate {
  const random = generator(seed);
  const values = Array.from({ length: rounds }, () => statistic(groups.map((group) => resample(group, random)))).sort((x, y) => x - y);
  return {
    value: statistic(groups.map((group) => [...group])),
    low: values[Math.floor(0.025 * rounds)]!,
    high: values[Math.ceil(0.975 * rounds) - 1]!,
  };
}
