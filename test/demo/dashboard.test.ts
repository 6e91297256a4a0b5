import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Replicas, startReplicas } from "./replicas.js";

// The dashboard in a real browser (Debian's chromium driven by playwright-core) against two real replicas.
const CHROMIUM = "/usr/bin/chromium";
const OUTPUT = fileURLToPath(new URL("../../test-output/", import.meta.url));
let redis: RedisServer;
let replicas: Replicas;
let browser: Browser | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: the dashboard test needs Debian's chromium. Install it with "apt-get install -y chromium" (.ci/run does this).`,
    );
  }
  redis = await startRedis({ leastPrivilege: true });
  [replicas, browser] = await Promise.all([
    startReplicas(2, { REDIS_URL: redis.url, COORDIS_PREFIX: testPrefix("demo-ui") }),
    chromium.launch({
      executablePath: CHROMIUM,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    }),
  ]);
});

afterAll(async () => {
  await browser?.close();
  await replicas?.stop();
  await redis?.stop();
});

describe("dashboard", () => {
  it("shows a score submitted through another replica live, without a reload", async () => {
    const [pageUrl, apiUrl] = replicas.urls as [string, string];
    const page = await (browser as Browser).newPage({ viewport: { width: 1280, height: 900 } });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(String(err)));
    await page.goto(`${pageUrl}/`);
    await expect.poll(() => page.locator("#replica").getAttribute("data-replica")).toBe("r1");
    await page.locator('#live[data-state="live"]').waitFor({ timeout: 15_000 });
    await page.locator('#rules [data-rule="burst"]').waitFor({ timeout: 15_000 });

    // The dashboard's key is issued per client address (the browser and this test share 127.0.0.1); r1 issued it
    // and r2 accepts it, since the replicas share the signing secret.
    const snap = (await (await fetch(`${pageUrl}/v1/dashboard`)).json()) as { apiKey: { id: string; key: string } };
    expect(await page.locator("#demo-key").textContent()).toBe(snap.apiKey.id);
    const player = `ui-${Date.now()}`;
    const res = await fetch(`${apiUrl}/v1/scores`, {
      method: "POST",
      headers: { "content-type": "application/json", "x-api-key": snap.apiKey.key },
      body: JSON.stringify({ playerId: player, name: "Grace", score: 31_337 }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("x-replica-id")).toBe("r2");

    const row = page.locator(`#board-all tbody tr[data-player="${player}"]`);
    await row.waitFor({ timeout: 15_000 });
    expect(await row.locator("td").nth(1).textContent()).toBe("Grace");
    await expect.poll(() => page.locator("#last-score").textContent()).toContain("via r2");
    await page.locator("#audit li").first().waitFor({ timeout: 15_000 });

    // "Spend one request" uses the page's key; the panel follows the key's budget (the submit above and this call).
    await page.locator("#spend").click();
    await expect.poll(() => page.locator("#spend-result").textContent()).toMatch(/^HTTP 200 from r1/);
    await expect
      .poll(() => page.locator('#rules [data-rule="daily"] .rule-head span').textContent())
      .toMatch(/^998 \/ 1000 left/);

    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: `${OUTPUT}dashboard.png`, fullPage: true });
    expect(existsSync(`${OUTPUT}dashboard.png`)).toBe(true);
    expect(errors).toEqual([]);
  });
});
