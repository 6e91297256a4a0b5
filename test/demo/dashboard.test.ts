import { existsSync, mkdirSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { type RedisServer, startRedis, testPrefix } from "@coordis/testing";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Replicas, startReplicas } from "./replicas.js";

// The dashboard in a real browser (Debian's chromium driven by playwright-core) against two real replicas.
const CHROMIUM = "/usr/bin/chromium";
const OUTPUT = fileURLToPath(new URL("../../test-output/", import.meta.url));
const TOKEN = "dashboard-admin-token";
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
    startReplicas(2, { REDIS_URL: redis.url, COORDIS_PREFIX: testPrefix("demo-ui"), ADMIN_TOKEN: TOKEN }),
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

    // A rename through the other replica (announced on /v1/events) shows on the boards without a reload.
    const rename = await fetch(`${apiUrl}/v1/players/${player}`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Grace H." }),
    });
    expect(rename.status).toBe(200);
    await expect.poll(() => row.locator("td").nth(1).textContent(), { timeout: 15_000 }).toBe("Grace H.");

    mkdirSync(OUTPUT, { recursive: true });
    await page.screenshot({ path: `${OUTPUT}dashboard.png`, fullPage: true });
    expect(existsSync(`${OUTPUT}dashboard.png`)).toBe(true);
    expect(errors).toEqual([]);
  });

  it("shows the stats queue with its dead letters, retries one as admin, and charts the activity", async () => {
    const [pageUrl, apiUrl] = replicas.urls as [string, string];
    const page = await (browser as Browser).newPage({ viewport: { width: 1280, height: 1400 } });
    const errors: string[] = [];
    page.on("pageerror", (err) => errors.push(String(err)));
    await page.goto(`${pageUrl}/`);
    await page.locator('#live[data-state="live"]').waitFor({ timeout: 15_000 });
    const snap = (await (await fetch(`${pageUrl}/v1/dashboard`)).json()) as { apiKey: { key: string } };
    const submit = (playerId: string, name: string, score: number) =>
      fetch(`${apiUrl}/v1/scores`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-api-key": snap.apiKey.key },
        body: JSON.stringify({ playerId, name, score }),
      });

    // Some activity: stats jobs that complete, one that dies, and rate-limit decisions.
    for (let i = 0; i < 4; i++) expect((await submit(`ok-${i}-${Date.now()}`, "Fine", 100 + i)).status).toBe(201);
    const player = `poisoned-${Date.now()}`;
    const res = await submit(player, "poison", 1);
    expect(res.status).toBe(201);
    const job = ((await res.json()) as { statsJob: string }).statsJob;

    // The dead letter shows up in the panel, with its error and a retry button.
    const row = page.locator(`#dead tbody tr[data-job="${job}"]`);
    await row.waitFor({ timeout: 20_000 });
    expect(await row.locator("td").first().textContent()).toBe(player);
    expect(await row.locator("td.error").textContent()).toContain('player named "poison"');
    await expect
      .poll(async () => Number(await page.locator('#queue-counts [data-count="dead"] strong').textContent()))
      .toBeGreaterThanOrEqual(1);

    // The charts draw one point per interval; the jobs and rate-limit charts have risen above their baseline.
    const chart = async (id: string) =>
      page.locator(`#${id}`).evaluate((svg) => ({
        total: Number(svg.getAttribute("data-total")),
        paths: [...svg.querySelectorAll("path")].map((p) => ({
          series: p.getAttribute("data-series"),
          ys: [...(p.getAttribute("d") ?? "").matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1])),
        })),
      }));
    const risen = (c: Awaited<ReturnType<typeof chart>>, series: string) =>
      (c.paths.find((p) => p.series === series)?.ys ?? []).some((y) => y < 78);
    await expect.poll(async () => risen(await chart("chart-ratelimit"), "allowed"), { timeout: 15_000 }).toBe(true);
    await expect.poll(async () => risen(await chart("chart-jobs"), "completed"), { timeout: 15_000 }).toBe(true);
    await expect.poll(async () => risen(await chart("chart-jobs"), "dead"), { timeout: 15_000 }).toBe(true);
    for (const id of ["chart-ratelimit", "chart-jobs"]) {
      const c = await chart(id);
      expect(c.total).toBeGreaterThan(0);
      for (const p of c.paths) expect(p.ys).toHaveLength(60);
    }
    // Depth is sampled every second: its lines have points (one per sampled interval).
    await expect
      .poll(async () => (await chart("chart-depth")).paths.map((p) => p.ys.length > 0))
      .toEqual([true, true, true]);
    expect(await page.locator('.legend[data-for="chart-ratelimit"] [data-series="allowed"]').textContent()).toMatch(
      /^allowed [1-9][\d,]*$/,
    );

    // Without the admin token the retry is refused; with it (after the player is renamed) the job completes.
    await row.locator("button.retry").click();
    await expect.poll(() => page.locator("#retry-result").textContent()).toContain("admin token");
    const rename = await fetch(`${apiUrl}/v1/players/${player}`, {
      method: "PUT",
      headers: { "content-type": "application/json", "x-api-key": snap.apiKey.key },
      body: JSON.stringify({ name: "Antidote" }),
    });
    expect(rename.status).toBe(200);
    await page.locator("#admin-token").fill("wrong-token");
    await row.locator("button.retry").click();
    await expect.poll(() => page.locator("#retry-result").textContent()).toMatch(/^HTTP 401/);
    await page.locator("#admin-token").fill(TOKEN);
    await row.locator("button.retry").click();
    await expect.poll(() => page.locator("#retry-result").textContent()).toBe(`retried ${job}`);
    await row.waitFor({ state: "detached", timeout: 15_000 });
    const profile = await fetch(`${apiUrl}/v1/players/${player}`, { headers: { "x-api-key": snap.apiKey.key } });
    expect(((await profile.json()) as { stats: unknown }).stats).toMatchObject({ submissions: 1, best: 1 });

    mkdirSync(OUTPUT, { recursive: true });
    await page.locator("#queue").screenshot({ path: `${OUTPUT}dashboard-queue.png` });
    expect(existsSync(`${OUTPUT}dashboard-queue.png`)).toBe(true);
    expect(errors).toEqual([]);
  });
});
