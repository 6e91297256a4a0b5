/**
 * Audit log reader: append events with idempotency keys to a tamper-evident log, page through it newest first with
 * a cursor (as an API endpoint would), and verify the hash chain.
 *
 *   REDIS_URL=redis://127.0.0.1:6379 npx tsx --conditions=@coordis/source examples/audit-log-reader.ts
 */
import { connect } from "@coordis/core";
import { EventLog } from "@coordis/eventlog";

type AuditEvent = { actor: string; action: string };

const redis = connect(process.env.REDIS_URL);
const audit = new EventLog<AuditEvent>(redis, `audit-${Date.now()}`, {
  prefix: process.env.COORDIS_PREFIX ?? "coordis",
  chain: true, // every entry carries the hash of the one before it
  maxAgeMs: 90 * 24 * 3_600_000, // retention: 90 days
});

// Writers: a retried request (same idempotency key) is recorded once.
const actions = ["login", "view invoice 7", "export invoices", "change email", "logout"];
for (const [i, action] of actions.entries()) {
  await audit.append({ actor: "ada", action }, { idempotencyKey: `req-${i}` });
}
const retry = await audit.append({ actor: "ada", action: "logout" }, { idempotencyKey: "req-4" });
console.log(`retried append: duplicate=${retry.duplicate}`);

// Reader: GET /audit?before=<cursor>, two entries per page, newest first.
let before: string | undefined;
let pageNo = 0;
const seen: string[] = [];
do {
  const page = await audit.read({ reverse: true, limit: 2, ...(before ? { before } : {}) });
  pageNo++;
  console.log(`page ${pageNo}:`, page.entries.map((e) => `#${e.seq} ${e.data.action}`).join(" | "));
  seen.push(...page.entries.map((e) => e.data.action));
  before = page.next;
} while (before);

const check = await audit.verify();
console.log(`chain verified: ok=${check.ok}, ${check.checked} entries`);
redis.disconnect();
if (!check.ok || seen.length !== actions.length) throw new Error("audit log is not what was written");
