import { ClosedError } from "@coordis/core";
import { coordis } from "@coordis/fastify";
import { testPrefix } from "@coordis/testing";
import Fastify from "fastify";
import { describe, expect, inject, it } from "vitest";

const url = inject("coordisRedisUrl");
const prefix = testPrefix("fastify-on-close-after-close");

describe("coordis.onClose(fn) once the app has closed", () => {
  it("throws ClosedError: the cleanup would never run (the resource it closes would stay open)", async () => {
    const app = Fastify();
    await app.register(coordis, { url, prefix });
    const ran: string[] = [];
    app.coordis.onClose(() => ran.push("before close"));
    await app.close();
    expect(ran).toEqual(["before close"]);
    expect(() => app.coordis.onClose(() => ran.push("after close"))).toThrow(ClosedError);
    await app.close();
    expect(ran).toEqual(["before close"]);
  });
});
