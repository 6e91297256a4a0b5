import { EventLog, type VerifyResult } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elverify");

/**
 * Runs `appenders` loops of appends (8 at a time each) and `verifiers` loops of verify() at once until at least
 * `verifications` verify() calls have returned and `appends` appends were made (so retention trimmed the log many
 * times during the walks); returns the results that were not ok.
 */
async function verifyWhileAppending(
  writer: EventLog<number>,
  reader: EventLog<number>,
  options: { appenders: number; verifiers: number; verifications: number; appends: number },
): Promise<{ alarms: VerifyResult[] }> {
  let done = 0;
  let appended = 0;
  const alarms: VerifyResult[] = [];
  const finished = () => done >= options.verifications && appended >= options.appends;
  const appendLoop = async () => {
    while (!finished()) {
      await Promise.all(Array.from({ length: 8 }, () => writer.append(appended++)));
    }
  };
  const verifyLoop = async () => {
    while (!finished()) {
      const result = await reader.verify();
      done++;
      if (!result.ok) alarms.push(result);
    }
  };
  await Promise.all([
    ...Array.from({ length: options.appenders }, appendLoop),
    ...Array.from({ length: options.verifiers }, verifyLoop),
  ]);
  return { alarms };
}

describe("verify() under retention and concurrent appends", () => {
  /** `redis` as Coordis uses it; `admin` unrestricted: Unrestricted client, for XDEL (a deletion verify() must report). */
  const clients = sharedClients();

  it("never reports a sound log as tampered while appends trim it (one page), and still reports deletions", async () => {
    const options = { prefix, chain: true, maxLen: 100 };
    const writer = new EventLog<number>(clients.redis, "one-page", { ...options, batch: true });
    const reader = new EventLog<number>(clients.redis, "one-page", options);
    for (let i = 0; i < 300; i++) await writer.append(-1);
    const { alarms } = await verifyWhileAppending(writer, reader, {
      appenders: 2,
      verifiers: 6,
      verifications: 1_000,
      appends: 3_000,
    });
    expect(alarms).toEqual([]);

    // Appends stopped: a deleted entry is reported, at the oldest position and in the middle.
    const sound = await reader.verify();
    expect(sound.ok).toBe(true);
    const entries = (await reader.read({ limit: 1_000 })).entries;
    await clients.admin.xdel(reader.keys.stream, entries[50]?.id as string);
    expect(await reader.verify()).toMatchObject({ ok: false, brokenAt: entries[51]?.id });
    await clients.admin.xdel(reader.keys.stream, entries[0]?.id as string);
    expect(await reader.verify()).toMatchObject({ ok: false, brokenAt: entries[1]?.id });
  });

  it("never reports a sound log as tampered while appends trim it past a multi-page walk", async () => {
    // Two pages per walk (1,000 entries each); the trims between them are what the walk must tell from deletions.
    const options = { prefix, chain: true, maxLen: 1_100 };
    const writer = new EventLog<number>(clients.redis, "many-pages", { ...options, batch: true });
    const reader = new EventLog<number>(clients.redis, "many-pages", options);
    await Promise.all(Array.from({ length: 2_000 }, () => writer.append(-1)));
    const { alarms } = await verifyWhileAppending(writer, reader, {
      appenders: 4,
      verifiers: 4,
      verifications: 150,
      appends: 4_000,
    });
    expect(alarms).toEqual([]);
    const entries = (await reader.read({ limit: 1_000 })).entries;
    await clients.admin.xdel(reader.keys.stream, entries[500]?.id as string);
    expect(await reader.verify()).toMatchObject({ ok: false, brokenAt: entries[501]?.id });
  });
});
