/**
 * Exponential backoff with full jitter (a uniform wait between 0 and the exponential bound), so
 * that clients dropped together by one restart do not all come back at the same instant.
 */

export const BACKOFF_BASE_MS = 1000;
export const BACKOFF_CAP_MS = 30000;

/**
 * Milliseconds to wait before retry `attempt` (0, 1, ...): uniform in [0, min(cap, base × 2^attempt)).
 *
 * @param {number} attempt
 * @param {() => number} [random]  a source of numbers in [0, 1)
 * @param {number} [base]
 * @param {number} [cap]
 */
export function backoffDelay(attempt, random = Math.random, base = BACKOFF_BASE_MS, cap = BACKOFF_CAP_MS) {
  return random() * Math.min(cap, base * 2 ** attempt);
}
