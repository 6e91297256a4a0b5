import { randomBytes } from "node:crypto";

/**
 * A small seeded pseudo-random generator (mulberry32): the same seed always yields the same sequence, so a fault
 * schedule or a jittered latency can be replayed from the seed a failing run printed. Not for cryptography.
 * @returns a function giving floats uniformly distributed in `[0, 1)`
 */
export function mulberry32(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A fresh random 32-bit seed (crypto-random), for runs that should differ but still be replayable. */
export function randomSeed(): number {
  return randomBytes(4).readUInt32BE(0);
}
