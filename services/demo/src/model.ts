import type { Entry } from "@coordis/leaderboard";

/** One entry of the demo's audit log. */
export type AuditEvent =
  | { type: "player-deleted"; playerId: string; replica: string; by: "admin" }
  | { type: "ratelimit-reset"; key: string; replica: string; by: "admin" }
  | { type: "api-key-issued"; ids: string[]; replica: string; by: "admin" }
  | { type: "job-retried"; jobId: string; replica: string; by: "admin" }
  | { type: "job-run"; job: string; tick: number; fence: number; replica: string; summary: unknown }
  | { type: "replica-started"; replica: string };

/** What travels on the demo's pub/sub channel (and out of `/v1/events`). */
export type DemoMessage =
  | {
      type: "top10";
      replica: string;
      playerId: string;
      name: string;
      score: number;
      ranks: { daily: number; all: number };
      top: { daily: BoardEntry[]; all: BoardEntry[] };
    }
  | { type: "job"; replica: string; job: string; tick: number; at: number }
  | { type: "player"; replica: string; playerId: string; action: "updated" | "deleted" };

/** A leaderboard entry as the API returns it. */
export interface BoardEntry {
  rank: number;
  playerId: string;
  score: number;
  name: string | null;
}

/** What the leaderboard keeps beside a player's score. */
export interface PlayerMeta {
  name?: string;
}

/** A leaderboard entry in the API's shape. */
export function toEntry(e: Entry<PlayerMeta>): BoardEntry {
  return { rank: e.rank, playerId: e.member, score: e.score, name: e.meta?.name ?? null };
}

/** What the stats job computes for a player. */
export interface PlayerStats {
  submissions: number;
  /** All-time best score (from the leaderboard). */
  best: number | null;
  /** Average of every submitted score, two decimals. */
  average: number;
  /** The fence of the delivery that wrote these stats. */
  fence: number;
  /** The replica whose worker computed them. */
  computedBy: string;
  computedAt: number;
}
