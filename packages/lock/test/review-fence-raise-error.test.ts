import { connect, type RedisClient, ScriptError } from "@coordis/core";
import { Redlock } from "@coordis/lock";
import { type RedisGroup, startRedisGroup, testPrefix } from "@coordis/testing";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const prefix = testPrefix();
const name = "raise-refused";

// After winning a quorum whose fence counters differ, the holder raises the masters behind to the highest fence. A
// raise those masters refuse (here an ACL that lets the user SET the lock key but not the fence counter; likewise a
// raise whose replicas did not confirm it) is not a grant that came back too late, yet acquire() ended with "the last
// grant came back after its validity... raise ttlMs", which points at the wrong cause and the wrong remedy.
describe("Redlock: a fence raise that fails", () => {
  let group: RedisGroup;
  let clients: RedisClient[];
  let admins: RedisClient[];
  beforeAll(async () => {
    group = await startRedisGroup(3);
    admins = group.adminUrls.map((u) => connect(u));
    await Promise.all(admins.map((a) => a.ping()));
    for (const a of admins) {
      // Every command on every key, but SET only on the lock key (a selector): not on its fence counter.
      const rules = ["on", "nopass", "~*", "&*", "+@all", "-set", `(+set ~${prefix}:lock:{${name}})`];
      await a.call("ACL", "SETUSER", "noraise", ...rules);
    }
    clients = group.adminUrls.map((u) => connect(u.replace("redis://", "redis://noraise:x@")));
    await Promise.all(clients.map((c) => c.ping()));
  });
  afterAll(async () => {
    for (const c of [...clients, ...admins]) c.disconnect();
    await group.stop();
  });

  it("rejects with what the masters answered (the refusal), not with a late grant's message", async () => {
    // Master 0's counter is ahead: every round wins fences 11, 1, 1 and must raise masters 1 and 2 to 11.
    await admins[0]?.set(`${prefix}:lock:{${name}}:fence`, "10");
    const err = await new Redlock(clients, name, { prefix }).acquire({ waitMs: 200 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ScriptError);
    expect((err as Error).message).toMatch(/lock\/fence-raise.*access/);
    expect((err as Error).message).not.toMatch(/after its validity/);
    // Nothing is left held.
    for (const a of admins) expect(await a.exists(`${prefix}:lock:{${name}}`)).toBe(0);
  });
});
