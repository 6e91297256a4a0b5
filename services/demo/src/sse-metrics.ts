import { Gauge, type Registry } from "prom-client";
import type { SseHub } from "./sse.js";

/** The hub's counters as `demo_sse_*` gauges of `registry` (read at scrape time). */
export function registerSseMetrics(registry: Registry, hub: SseHub): void {
  const gauge = (name: string, help: string, labelNames: string[], read: (g: Gauge) => void) => {
    registry.removeSingleMetric(name);
    new Gauge({
      name,
      help,
      labelNames,
      registers: [registry],
      collect() {
        read(this);
      },
    });
  };
  gauge("demo_sse_clients", "Open event streams of this replica", ["channel"], (g) => {
    for (const channel of ["events", "audit"]) g.set({ channel }, hub.size(channel));
  });
  gauge("demo_sse_buffered_bytes", "Bytes waiting in this replica for stream clients", [], (g) =>
    g.set(hub.stats().bufferedBytes),
  );
  gauge("demo_sse_peak_client_buffer_bytes", "Most bytes one stream client ever had waiting", [], (g) =>
    g.set(hub.stats().peakClientBufferBytes),
  );
  gauge("demo_sse_slow_disconnects", "Stream clients disconnected for not reading", [], (g) =>
    g.set(hub.stats().slowDisconnects),
  );
  gauge("demo_sse_refused", "Streams refused over a cap", ["cap"], (g) => {
    const { refused } = hub.stats();
    g.set({ cap: "per-address" }, refused.perAddress);
    g.set({ cap: "total" }, refused.total);
  });
}
