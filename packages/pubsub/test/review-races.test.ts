import type { RedisClient } from "@coordis/core";
import { PubSub, type ResubscribedInfo, type Unsubscribe } from "@coordis/pubsub";
import {
  EventRecorder,
  mulberry32,
  type RedisServer,
  recordObserver,
  startRedis,
  testPrefix,
  waitUntil,
} from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();

describe("review: races", () => {
  let server: RedisServer;
  let admin: RedisClient;
  let redis: RedisClient;
  beforeAll(async () => {
    server = await startRedis();
    admin = server.adminClient();
    redis = server.client();
    await admin.ping();
  });
  afterAll(async () => {
    await server.stop();
  });
  const numsub = async (channel: string) =>
    Number(((await admin.call("PUBSUB", "NUMSUB", `${prefix}:ps:${channel}`)) as [string, number])[1]);

  for (const seed of [1, 2, 3, 4, 5]) {
    it(`random churn seed ${seed}: Redis state and delivery match the handlers left`, async () => {
      const rnd = mulberry32(seed);
      const b = new PubSub(redis, { prefix });
      const channels = ["c0", "c1", "c2", "c3"];
      const live = new Map<number, { channel: string; off?: Unsubscribe; removed: boolean }>();
      const got = new Map<number, unknown[]>();
      const pending: Promise<unknown>[] = [];
      let id = 0;
      for (let step = 0; step < 300; step++) {
        const r = rnd();
        if (r < 0.5 || live.size === 0) {
          const me = id++;
          const channel = channels[Math.floor(rnd() * channels.length)] as string;
          const rec: { channel: string; off?: Unsubscribe; removed: boolean } = { channel, removed: false };
          live.set(me, rec);
          got.set(me, []);
          pending.push(
            b
              .subscribe(channel, (m) => {
                got.get(me)?.push(m);
              })
              .then((off) => {
                rec.off = off;
              }),
          );
        } else {
          const ids = [...live.keys()];
          const victim = ids[Math.floor(rnd() * ids.length)] as number;
          const rec = live.get(victim);
          if (rec?.off !== undefined && !rec.removed) {
            rec.removed = true;
            pending.push(rec.off());
            if (rnd() < 0.3) pending.push(rec.off()); // twice
          }
        }
        if (rnd() < 0.2) await new Promise((res) => setImmediate(res));
        if (rnd() < 0.05) await Promise.all(pending);
      }
      await Promise.all(pending);
      const expected = new Map<string, number[]>();
      for (const [k, rec] of live) if (!rec.removed) expected.set(rec.channel, [...(expected.get(rec.channel) ?? []), k]);
      for (const c of channels) {
        expect(await numsub(c), `NUMSUB ${c}`).toBe(expected.has(c) ? 1 : 0);
        expect(b.stats().channels).toBe(expected.size);
      }
      for (const c of channels) expect(await b.publish(c, c)).toBe(expected.has(c) ? 1 : 0);
      await waitUntil("deliveries", () =>
        [...expected.values()].flat().every((k) => (got.get(k) ?? []).includes(live.get(k)?.channel)),
      );
      for (const [k, rec] of live) {
        const msgs = got.get(k) ?? [];
        if (rec.removed) expect(msgs.filter((m) => m === rec.channel), `removed ${k}`).toEqual([]);
        else expect(msgs, `live ${k}`).toEqual([rec.channel]);
      }
      await b.close();
    });
  }

  it("calling the same unsubscribe twice: the second resolves before Redis confirmed", async () => {
    const b = new PubSub(redis, { prefix });
    const off = await b.subscribe("double-off", () => {});
    let firstDone = false;
    const p1 = off().then(() => {
      firstDone = true;
    });
    await off();
    const secondSawFirstDone = firstDone;
    await p1;
    expect(secondSawFirstDone).toBe(true);
    await b.close();
  });

  it("a sync handler that subscribes another handler to the same channel: the new one gets the message published before", async () => {
    const b = new PubSub(redis, { prefix });
    const late: unknown[] = [];
    await b.subscribe("reentrant", () => {});
    let added = false;
    await b.subscribe("reentrant", () => {
      if (added) return;
      added = true;
      void b.subscribe("reentrant", (m) => {
        late.push(m);
      });
    });
    await b.publish("reentrant", "before");
    await waitUntil("added", () => added);
    await new Promise((r) => setTimeout(r, 100));
    await b.publish("reentrant", "after");
    await waitUntil("after", () => late.includes("after"));
    expect(late).toEqual(["after"]);
    await b.close();
  });

  it("a sync handler that re-registers itself (off + subscribe) while another handler shares the channel", async () => {
    const b = new PubSub(redis, { prefix });
    await b.subscribe("rereg", () => {});
    let calls = 0;
    const register = (): void => {
      let off: Unsubscribe | undefined;
      let done = false;
      void b
        .subscribe<number>("rereg", () => {
          calls++;
          if (calls >= 10_000 || done) return; // guard against hanging the worker
          done = true;
          void off?.();
          register();
        })
        .then((o) => {
          off = o;
          if (done) void o();
        });
    };
    register();
    await waitUntil("registered", () => b.stats().subscriptions === 2);
    await b.publish("rereg", 1);
    await waitUntil("handled", () => calls > 0);
    await new Promise((r) => setTimeout(r, 100));
    console.log("calls for ONE message:", calls, "subscriptions now:", b.stats().subscriptions);
    expect(calls).toBe(1);
    await b.close();
  });

  it("CLIENT KILL TYPE pubsub: resubscribed and delivery again", async () => {
    const observer = recordObserver();
    const b = new PubSub(redis, { prefix, observer });
    const rec = new EventRecorder<ResubscribedInfo>();
    b.on("resubscribed", rec.record);
    const got: number[] = [];
    await b.subscribe<number>("killed", (m) => {
      got.push(m);
    });
    await b.psubscribe<number>("killedp*", (m) => {
      got.push(m * 10);
    });
    await admin.call("CLIENT", "KILL", "TYPE", "pubsub");
    const info = await rec.waitFor(() => true, { what: "resubscribed" });
    expect(info).toMatchObject({ channels: 1, patterns: 1 });
    expect(await b.publish("killed", 1)).toBe(1);
    expect(await b.publish("killedp1", 2)).toBe(1);
    await waitUntil("got", () => got.length === 2);
    await b.close();
  });
});
