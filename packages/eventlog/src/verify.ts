import { CoordisError, runScript, toCoordisError } from "@coordis/core";
import { afterHead, type ChainMode, checkOwn, genesisOf, type Link, linkBreak } from "./chain.js";
import type { LogContext } from "./context.js";
import { compareIds, ENTRY_OVERHEAD, type RawEntry, WALK_PAGE_BYTES } from "./entries.js";
import { eventlogScripts } from "./scripts.generated.js";
import { MAX_REPORTED, type VerifyResult } from "./types.js";

/** Most entries per page of the walk. */
const PAGE = 1_000;

/** verify()'s walk: the chain followed so far and what it found. */
interface Walk {
  /** The last valid link. */
  prev: Link | undefined;
  /** The claimed hash and seq of the last entry that failed its own check (an edit): the next may link to it. */
  alt: { hash: string; seq: number } | undefined;
  /** The id of the newest entry that failed its own check (listed in `unchained`). */
  failedId: string | undefined;
  checked: number;
  broken: { id: string; reason: string } | undefined;
  unchained: Array<{ id: string; reason: string }>;
  unchainedCount: number;
}

/**
 * Checks one page of verify()'s walk (read atomically with the meta hash's `last` and `anchor`), oldest first. An
 * entry after the recorded last id, without chain fields, or whose hash/MAC does not match is not part of the
 * chain: listed, and the walk goes on from the last valid link (or from the claimed hash of a changed entry, so the
 * entry after an edit is not reported too). A valid entry that does not follow the last valid one is a break
 * (deletion, or an insertion before it): reported, and the chain continues from it. The page's first valid entry
 * follows `prev` unless retention trimmed past `prev` (the anchor lies after it): then it must be the anchor, like the
 * oldest entry of the log, which is the genesis entry when no trim happened yet.
 */
function walkPage(mode: ChainMode, walk: Walk, page: readonly RawEntry[], last: string | null, anchor: string | null) {
  const unchained = (id: string, reason: string) => {
    walk.unchainedCount++;
    if (walk.unchained.length < MAX_REPORTED) walk.unchained.push({ id, reason });
  };
  for (const [id, fields] of page) {
    if (afterHead(id, last)) {
      unchained(id, "entry after the recorded head (not appended by EventLog.append)");
      continue;
    }
    const own = checkOwn(mode, id, fields);
    if (!own.ok) {
      unchained(id, own.reason);
      if (own.claimed !== undefined) walk.alt = own.claimed;
      walk.failedId = id;
      continue;
    }
    const { link } = own;
    let reason: string | undefined;
    const prev = walk.prev;
    if (prev === undefined || (anchor !== null && compareIds(anchor, prev.id) > 0)) {
      if (anchor === null && (link.prevHash !== genesisOf(mode) || link.seq !== 1)) {
        reason = "the first entry is not the genesis entry and no retention trim happened (deleted)";
      } else if (anchor !== null && compareIds(id, anchor) !== 0) {
        reason = `the oldest entry is not the first entry kept by retention (${anchor}): deleted`;
      }
    } else {
      reason = linkBreak(link, prev);
    }
    // It follows a changed entry (already listed): the chain goes on through it.
    if (reason !== undefined && walk.alt !== undefined && linkBreak(link, walk.alt) === undefined) reason = undefined;
    if (reason !== undefined) walk.broken ??= { id, reason };
    walk.prev = link;
    walk.alt = undefined;
    walk.checked++;
  }
}

/**
 * One page of the walk read in one atomic step with the meta hash, at most {@link PAGE} entries and
 * {@link WALK_PAGE_BYTES} bytes of them (see lua/eventlog/verify-page.lua): `entryBytes` is the largest entry size
 * expected, which sizes the script's reads; the reply says whether the page reached the stream's end, and the largest
 * size expected from then on.
 */
async function verifyPage(
  ctx: LogContext,
  start: string,
  entryBytes: number,
): Promise<[string | null, string | null, string | null, RawEntry[], number, number]> {
  try {
    return await runScript(
      ctx.redis,
      eventlogScripts.verifyPage,
      [ctx.keys.stream, ctx.keys.meta],
      [start, PAGE, WALK_PAGE_BYTES, entryBytes],
    );
  } catch (err) {
    throw toCoordisError(err, eventlogScripts.verifyPage.name);
  }
}

/**
 * Walks the whole stream to its real end and checks the chain (see {@link EventLog.verify}).
 * @throws CoordisError `ERR_EVENTLOG_NOT_CHAINED` for a log without `chain`
 */
export async function verifyChain(ctx: LogContext): Promise<VerifyResult> {
  const mode = ctx.chainMode;
  if (mode === undefined) {
    throw new CoordisError("ERR_EVENTLOG_NOT_CHAINED", `log "${ctx.name}" was not created with chain: true`);
  }
  const walk: Walk = {
    prev: undefined,
    alt: undefined,
    failedId: undefined,
    checked: 0,
    broken: undefined,
    unchained: [],
    unchainedCount: 0,
  };
  let start = "-";
  let last: string | null;
  let head: string | null;
  // The largest entry expected: one of the largest event this instance appends, until a larger one is seen.
  let entryBytes = ctx.maxEventBytes + ENTRY_OVERHEAD;
  for (;;) {
    let anchor: string | null;
    let page: RawEntry[];
    let ended: number;
    [last, head, anchor, page, ended, entryBytes] = await verifyPage(ctx, start, entryBytes);
    walkPage(mode, walk, page, last, anchor);
    const final = page.at(-1);
    // The page that reached the end of the stream was read with the meta hash below.
    if (ended === 1 || final === undefined) break;
    start = `(${final[0]}`;
  }
  // The last page was read with the meta hash: the newest chained entry must be the recorded head. When the recorded
  // head's own entry is there but fails its own check (changed, or rewritten without chain fields: listed as
  // unchained), that entry is the problem reported: the valid entry before it was not deleted or replaced.
  const prev = walk.prev;
  if (last !== null && walk.failedId !== last && (prev === undefined || prev.id !== last || prev.hash !== head)) {
    walk.broken ??= {
      id: prev?.id ?? last,
      reason: "the newest entry is not the recorded head (deleted or replaced)",
    };
  }
  const firstUnchained = walk.unchained[0];
  let problem = walk.broken;
  if (firstUnchained !== undefined && (problem === undefined || compareIds(firstUnchained.id, problem.id) < 0)) {
    problem = firstUnchained;
  }
  return {
    ok: problem === undefined,
    ...(problem === undefined ? {} : { brokenAt: problem.id, reason: problem.reason }),
    checked: walk.checked,
    unchained: walk.unchained,
    unchainedCount: walk.unchainedCount,
  };
}
