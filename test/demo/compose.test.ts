import { readFileSync } from "node:fs";
import { ENV_NAMES } from "@coordis/demo";
import { describe, expect, it } from "vitest";

// No Docker engine here: this checks docker-compose.yml and the nginx config against the service's configuration.
const root = new URL("../../", import.meta.url);
const composeText = readFileSync(new URL("docker-compose.yml", root), "utf8");
const nginx = readFileSync(new URL("services/demo/deploy/nginx.conf", root), "utf8");

type Yaml = string | Yaml[] | { [key: string]: Yaml };

/**
 * A minimal YAML reader for the subset docker-compose.yml uses: block maps, block lists of scalars, flow
 * sequences `[...]` and flow maps `{ k: v }` of scalars, quoted or plain scalars, comments.
 */
function parseYaml(text: string): Yaml {
  const lines = text
    .split("\n")
    .map((raw) => raw.replace(/\s+#.*$/, "").replace(/^\s*#.*$/, ""))
    .filter((l) => l.trim() !== "")
    .map((l) => ({ indent: l.length - l.trimStart().length, text: l.trim() }));
  let i = 0;
  const scalar = (s: string): Yaml => {
    const t = s.trim();
    if (t.startsWith("[")) return splitFlow(t.slice(1, -1)).map(scalar);
    if (t.startsWith("{")) {
      const out: Record<string, Yaml> = {};
      for (const part of splitFlow(t.slice(1, -1))) {
        const at = part.indexOf(":");
        out[part.slice(0, at).trim()] = scalar(part.slice(at + 1));
      }
      return out;
    }
    if (t.startsWith('"')) return JSON.parse(t) as string;
    return t;
  };
  const block = (indent: number): Yaml => {
    const first = lines[i];
    if (first?.text.startsWith("- ")) {
      const list: Yaml[] = [];
      while (lines[i]?.indent === indent && lines[i]?.text.startsWith("- "))
        list.push(scalar((lines[i++] as { text: string }).text.slice(2)));
      return list;
    }
    const map: Record<string, Yaml> = {};
    while (i < lines.length && (lines[i] as { indent: number }).indent === indent) {
      const { text: t } = lines[i++] as { text: string };
      const at = t.indexOf(":");
      const key = t.slice(0, at).trim();
      const rest = t.slice(at + 1).trim();
      map[key] = rest === "" ? block((lines[i] as { indent: number }).indent) : scalar(rest);
    }
    return map;
  };
  return block(0);
}

function splitFlow(s: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quote = false;
  let current = "";
  for (const c of s) {
    if (c === '"') quote = !quote;
    if (!quote && (c === "[" || c === "{")) depth++;
    if (!quote && (c === "]" || c === "}")) depth--;
    if (!quote && depth === 0 && c === ",") {
      parts.push(current.trim());
      current = "";
    } else current += c;
  }
  if (current.trim() !== "") parts.push(current.trim());
  return parts;
}

const compose = parseYaml(composeText) as { services: Record<string, Record<string, Yaml>> };
const services = compose.services;
const svc = (name: string) => (services[name] ?? {}) as Record<string, Yaml>;
const replicas = Object.keys(services).filter((name) => /^replica\d+$/.test(name));

describe("docker-compose.yml", () => {
  it("has two Redis roles, three replicas and a load balancer, each with a healthcheck", () => {
    expect(Object.keys(services).sort()).toEqual(["lb", "redis", "redis-cache", "replica1", "replica2", "replica3"]);
    for (const [name, svc] of Object.entries(services)) {
      const test = (svc.healthcheck as Record<string, Yaml> | undefined)?.test;
      expect(Array.isArray(test) && test[0] === "CMD", `${name} healthcheck`).toBe(true);
    }
    expect((svc("redis").command as string[]).join(" ")).toContain("--maxmemory-policy noeviction");
    expect((svc("redis-cache").command as string[]).join(" ")).toContain("--maxmemory-policy allkeys-lru");
    expect(services.lb?.ports).toEqual(["8080:80"]);
  });

  it("configures the replicas only with variables the service reads, consistently", () => {
    const ids = new Set<string>();
    for (const name of replicas) {
      const svc = services[name] as Record<string, Yaml>;
      const env = svc.environment as Record<string, string>;
      for (const key of Object.keys(env)) expect(ENV_NAMES as readonly string[], `${name}: ${key}`).toContain(key);
      expect(env.REDIS_URL).toBe("redis://redis:6379");
      expect(env.CACHE_REDIS_URL).toBe("redis://redis-cache:6379");
      expect(env.HOST).toBe("0.0.0.0");
      expect(env.PORT).toBe("3000");
      expect(env.TRUST_PROXY).toBe("uniquelocal");
      ids.add(env.REPLICA_ID as string);
      expect((svc.command as string[]).join(" ")).toContain("services/demo/src/server.ts");
      const check = ((svc.healthcheck as Record<string, Yaml>).test as string[]).join(" ");
      expect(check).toContain(`127.0.0.1:${env.PORT}/readyz`);
      expect(Object.keys(svc.depends_on as Record<string, Yaml>).sort()).toEqual(["redis", "redis-cache"]);
    }
    expect(ids.size).toBe(replicas.length);
    expect(Object.keys(services.lb?.depends_on as Record<string, Yaml>).sort()).toEqual(replicas);
  });

  it("load-balances over exactly the replicas, on their port, with SSE-friendly proxying", () => {
    const upstream = [...nginx.matchAll(/^\s*server\s+([\w-]+):(\d+);/gm)].map((m) => `${m[1]}:${m[2]}`);
    expect(upstream.sort()).toEqual(
      replicas.map((r) => `${r}:${(svc(r).environment as Record<string, string>).PORT}`).sort(),
    );
    expect(nginx).toMatch(/proxy_buffering off;/);
    expect(nginx).toMatch(/X-Forwarded-For \$proxy_add_x_forwarded_for/);
    const mounted = (svc("lb").volumes as string[])[0] ?? "";
    expect(mounted.startsWith("./services/demo/deploy/nginx.conf:")).toBe(true);
  });
});
