/**
 * Window counts: their bounds (32-bit, saturating; 53-bit for `wide` series, which sum message
 * bytes), and the checks every count and add makes.
 */
import { WindowRangeError } from '../errors.js';

export const MAX_COUNT = 2 ** 31 - 1;
export const MIN_COUNT = -(2 ** 31);
/** Bounds of a `wide` series' window counts (doubles: every integer up to 2^53 - 1 is exact, 8 PiB). */
export const MAX_WIDE_COUNT = Number.MAX_SAFE_INTEGER;
export const MIN_WIDE_COUNT = -Number.MAX_SAFE_INTEGER;

/** Validates a window range of a series and clamps it: returns the last window to read (≤ windows-1). */
export function checkWindowRange(series: { name: string; windows: number }, startv: number, endv: number): number {
  if (!Number.isInteger(startv) || !Number.isInteger(endv) || startv < 0 || endv < startv) {
    throw new WindowRangeError(`series "${series.name}": window range ${startv}..${endv} is invalid (need integers 0 ≤ start ≤ end)`);
  }
  return Math.min(endv, series.windows - 1);
}

/** An add's count must fit a window count: an integer from MIN_COUNT to MAX_COUNT. */
export function checkAddCount(series: string, count: number): void {
  if (!Number.isSafeInteger(count) || count > MAX_COUNT || count < MIN_COUNT) {
    throw new WindowRangeError(`series "${series}": count must be an integer from ${MIN_COUNT} to ${MAX_COUNT}`);
  }
}
