/** Fixture plans for tests: planned once per worker, and private decoded copies a test may change. */
import { decodePlan, encodePlan } from '../../src/plan/codec.js';
import { planFromBytes, type LoadedPlan } from '../../src/plan/file.js';
import type { Plan } from '../../src/plan/types.js';
import { readFixture } from './paths.js';

const plans = new Map<string, LoadedPlan>();

export function loadPlan(name: string): LoadedPlan {
  let p = plans.get(name);
  if (!p) {
    p = planFromBytes(readFixture(name), name);
    plans.set(name, p);
  }
  return p;
}

/** A private, freshly decoded copy of a fixture's plan that a test may change. */
export function planCopy(name: string): Plan {
  return decodePlan(encodePlan(loadPlan(name).plan));
}
