/** Bad input to @coordis/core is rejected with InvalidArgumentError and sends nothing (see ./harness.ts). */
import { connect, entityKeys, hashTagOf, parseRedisUrl, serverAtLeast, slotOf } from "@coordis/core";
import fc from "fast-check";
import { describe, it } from "vitest";
import {
  bad,
  c,
  hostile,
  invalid,
  isPlainObject,
  redis,
  rejectedWithoutCommands,
  server,
  useServer,
} from "./harness.js";

useServer();

describe("bad input is rejected with InvalidArgumentError and sends nothing", () => {
  it("core: connect, parseRedisUrl, entityKeys", async () => {
    const url = server.url;
    const badUrl = invalid(
      (v) => v === undefined,
      fc.string({ maxLength: 30 }).filter((s) => !s.includes("://")),
      fc.constantFrom(
        "http://127.0.0.1:6379",
        "redis://",
        "redis://h:99999",
        "redis://h:0",
        "redis://a,b",
        "redis://h/x",
        "redis://h/1/2",
        "redis://h#frag",
        "redis://h?unknown=1",
        "redis://h?tls_ca=/x",
        "redis+cluster://h:1/0",
        "redis+sentinel://h:1",
        "redis://%zz@h",
        `${url}?command_timeout_ms=abc`,
        `${url}?command_timeout_ms=0`,
        `${url}?connect_timeout_ms=1.5`,
        `${url.replace("redis://", "rediss://")}?tls_reject_unauthorized=maybe`,
        `${url.replace("redis://", "rediss://")}?tls_ca=/nonexistent/ca.pem`,
      ),
    );
    await rejectedWithoutCommands([
      // A bad ms parameter is named "url command_timeout_ms". parseRedisUrl checks syntax only; the ms and tls_*
      // parameter values and the PEM files are checked by connect() (still before opening anything).
      c("connect(url)", /^url/, badUrl, (v) => connect(v)),
      c(
        "parseRedisUrl(url)",
        /^url/,
        badUrl.filter((v) => typeof v !== "string" || !v.includes(`:${server.port}`)),
        (v) => parseRedisUrl(v),
      ),
      c("connect(url, { commandTimeoutMs })", "options.commandTimeoutMs", bad.optional(bad.duration(1, 600_000)), (v) =>
        connect(url, { commandTimeoutMs: v }),
      ),
      c("connect(url, { connectTimeoutMs })", "options.connectTimeoutMs", bad.optional(bad.duration(1, 600_000)), (v) =>
        connect(url, { connectTimeoutMs: v }),
      ),
      c("entityKeys(prefix)", "prefix", bad.prefix(), (v) => entityKeys(v, "lock", "n")),
      c("entityKeys(name)", "name", bad.name(), (v) => entityKeys("p", "lock", v)),
      c(
        "entityKeys(kind)",
        "kind",
        invalid((v) => typeof v === "string" && /^[a-z][a-z0-9-]{0,31}$/.test(v)),
        (v) => entityKeys("p", v, "n"),
      ),
      c(
        "connect(url, options)",
        "options",
        invalid((v) => v === undefined || isPlainObject(v)),
        (v) => connect(url, v as never),
      ),
      c(
        "serverAtLeast(redis, minVersion)",
        "minVersion",
        invalid((v) => typeof v === "string" && /^\d+(\.\d+){0,2}$/.test(v)),
        (v) => serverAtLeast(redis, v as never),
      ),
      c("serverAtLeast(redis, hostile object)", "minVersion", fc.constantFrom(...hostile), (v) =>
        serverAtLeast(redis, v as never),
      ),
      c(
        "hashTagOf(key)",
        "key",
        invalid((v) => typeof v === "string"),
        (v) => hashTagOf(v as never),
      ),
      c(
        "slotOf(key)",
        "key",
        invalid((v) => typeof v === "string"),
        (v) => slotOf(v as never),
      ),
    ]);
    // runScript(redis, script, keys, args) is the low-level building block the primitives call after validating;
    // it does not validate its arguments itself (documented).
  });
});
