import { InvalidArgumentError } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";
import { testPrefix } from "@coordis/testing";
import { sharedClients } from "@coordis/testing/vitest";
import { describe, expect, it } from "vitest";

const prefix = testPrefix("elkeyid");
const clients = sharedClients();
const oldKey = "o".repeat(32);
const newKey = "n".repeat(32);

// A key rotation that keeps the key id: previousKeys names the old key under the id the new key takes. One of the
// two keys would be ignored, and every entry signed with it reported as tampered.
describe("a keyed chain given two different keys under one key id", () => {
  it("is refused with InvalidArgumentError naming the previous key; the same key under its own id is accepted", async () => {
    const signer = new EventLog<number>(clients.redis, "rotate", { prefix, chain: { key: oldKey, keyId: "v1" } });
    await signer.append(1);
    await signer.append(2);
    let err: unknown;
    try {
      const rotated = new EventLog<number>(clients.redis, "rotate", {
        prefix,
        chain: { key: newKey, keyId: "v1", previousKeys: { v1: oldKey } },
      });
      // Built anyway: the entries signed with the old key under "v1" no longer verify.
      err = await rotated.read().then(
        (page) => new Error(`constructed; read ${page.entries.length} entries`),
        (readErr: unknown) => readErr,
      );
    } catch (ctorErr) {
      err = ctorErr;
    }
    expect(err).toBeInstanceOf(InvalidArgumentError);
    expect((err as InvalidArgumentError).message).toContain("options.chain.previousKeys.v1");
    expect((err as InvalidArgumentError).message).toContain("new keyId");

    // The same key repeated under its own id is no conflict, and a rotation to a new id reads the old entries.
    const same = new EventLog<number>(clients.redis, "rotate", {
      prefix,
      chain: { key: oldKey, keyId: "v1", previousKeys: { v1: oldKey } },
    });
    expect((await same.read()).entries.map((e) => e.data)).toEqual([1, 2]);
    const rotated = new EventLog<number>(clients.redis, "rotate", {
      prefix,
      chain: { key: newKey, keyId: "v2", previousKeys: { v1: oldKey } },
    });
    await rotated.append(3);
    expect((await rotated.read()).entries.map((e) => [e.data, e.keyId, e.verified])).toEqual([
      [1, "v1", true],
      [2, "v1", true],
      [3, "v2", true],
    ]);
    expect((await rotated.verify()).ok).toBe(true);
  });
});
