import { getEventListeners } from "node:events";
import { EventLog } from "@coordis/eventlog";
import { testPrefix, waitUntil } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

// Many tails given one application-wide signal (a shutdown signal): each used to add its own abort listener to it, and
// past 10 Node printed "MaxListenersExceededWarning: Possible EventTarget memory leak detected" although nothing
// leaked. The signal carries one listener however many tails run, and its abort still ends every one of them.
const prefix = testPrefix("eltailsignal");
const TAILS = 15;

describe("tails sharing one signal", () => {
  const clients = sharedClients();

  it(`${TAILS} running tails put one abort listener on it; its abort ends every one, and the listener goes`, async () => {
    const log = new EventLog<number>(clients.redis, "shared-signal", { prefix });
    const shutdown = new AbortController();
    const got = Array.from({ length: TAILS }, () => 0);
    const tails = got.map(async (_, i) => {
      for await (const _entry of log.tail({ from: "start", blockMs: 100, signal: shutdown.signal }))
        got[i] = (got[i] ?? 0) + 1;
    });
    await log.append(1);
    await waitUntil("every tail to get the entry", () => got.every((n) => n === 1), 10_000);
    expect(getEventListeners(shutdown.signal, "abort")).toHaveLength(1);
    shutdown.abort();
    await Promise.all(tails);
    expect(getEventListeners(shutdown.signal, "abort")).toHaveLength(0);
  });
});
