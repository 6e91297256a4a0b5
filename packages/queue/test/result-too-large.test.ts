import { JobDeadError } from "@coordis/queue";
import { testPrefix } from "@coordis/testing";
import { describe, expect, it } from "vitest";
import { onSharedServer } from "./helpers.js";

const prefix = testPrefix("queue-result-too-large");

// The README's failure table: a result that cannot be stored makes the job dead at once, without a retry (another
// attempt would compute the same result).
describe("a handler whose result cannot be stored", () => {
  const { queue, worker } = onSharedServer(prefix);

  it.each([
    ["larger than maxPayloadBytes", { maxPayloadBytes: 64 }, (): string => "x".repeat(100), /larger than 64 bytes/],
    [
      "a result codec that throws",
      {
        resultCodec: {
          encode: () => {
            throw new Error("no codec for this");
          },
          decode: (t: string) => t,
        },
      },
      (): string => "fine",
      /no codec for this/,
    ],
  ] as const)("%s: the job is dead after one attempt, with that error", async (kind, options, handler, error) => {
    const name = `too-large-${kind.length}`;
    const q = queue<string, string>(name);
    let runs = 0;
    worker<string, string>(
      name,
      async (): Promise<string> => {
        runs++;
        return handler();
      },
      options,
    );
    const { id } = await q.add("job", { attempts: 3 });
    const err = await q.result(id, { timeoutMs: 10_000 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(JobDeadError);
    expect((err as JobDeadError).attempts).toBe(1);
    expect((err as JobDeadError).lastError).toMatch(error);
    expect(runs).toBe(1);
  });
});
