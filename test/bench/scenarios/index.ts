import type { Scenario } from "../types.js";
import { cacheScenarios } from "./cache.js";
import { eventLogScenarios } from "./eventlog.js";
import { httpScenarios } from "./http.js";
import { jobQueueScenarios } from "./job-queue.js";
import { leaderboardScenarios } from "./leaderboard.js";
import { lockScenarios } from "./lock.js";
import { queueScenarios } from "./queue.js";
import { rateLimitScenarios } from "./ratelimit.js";
import { rawFloors } from "./raw.js";

/** Every scenario, in table order. */
export function allScenarios(): Scenario[] {
  return [
    ...rawFloors(),
    ...lockScenarios(),
    ...rateLimitScenarios(),
    ...leaderboardScenarios(),
    ...eventLogScenarios(),
    ...queueScenarios(),
    ...jobQueueScenarios(),
    ...cacheScenarios(),
    ...httpScenarios(),
  ];
}
