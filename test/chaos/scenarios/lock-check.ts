import { performance } from "node:perf_hooks";
import type { Violations } from "../lib/workers.js";

/** Tolerance when comparing timestamps of different processes (Date.now() has 1 ms resolution), ms. */
const CLOCK_TOLERANCE_MS = 2;

/** One acquisition as a worker reported it (wall-clock ms of this machine, shared by all processes). */
export interface Acquisition {
  worker: string;
  fence: number;
  reqAt: number;
  gotAt: number;
  validUntil: number;
  releaseAt: number | undefined;
}

/** One critical section as the register saw it (register clock: the parent's performance.now()). */
interface Section {
  worker: string;
  fence: number;
  beginAt: number;
  beginOk: boolean;
  endAt: number | undefined;
  endOk: boolean;
}

/**
 * The protected resource: a register holding a counter that honours fences. A fenced read (`begin`) or write
 * (`end`) is accepted only when its fence is ≥ the highest fence seen so far, which then becomes that fence; the
 * write stores the value the section computed from its read. Equal fences are let through on purpose: two holders
 * given the same fence would then both be accepted, and the checker sees the overlap and the lost update.
 */
export class FencedRegister {
  maxSeen = 0;
  value = 0;
  writes = 0;
  readonly sections: Section[] = [];
  readonly #open = new Map<string, Section>();

  begin(worker: string, fence: number): { accepted: boolean; value: number } {
    const accepted = fence >= this.maxSeen;
    if (accepted) this.maxSeen = fence;
    const section: Section = {
      worker,
      fence,
      beginAt: performance.now(),
      beginOk: accepted,
      endAt: undefined,
      endOk: false,
    };
    this.sections.push(section);
    this.#open.set(`${worker}/${fence}`, section);
    return { accepted, value: this.value };
  }

  end(worker: string, fence: number, value: number): boolean {
    const section = this.#open.get(`${worker}/${fence}`);
    this.#open.delete(`${worker}/${fence}`);
    const accepted = section?.beginOk === true && fence >= this.maxSeen;
    if (accepted) {
      this.maxSeen = fence;
      this.value = value;
      this.writes++;
    }
    if (section !== undefined) {
      section.endAt = performance.now();
      section.endOk = accepted;
    }
    return accepted;
  }
}

/**
 * The history checker. Register side: accepted sections never overlap, accepted fences strictly increase, no update
 * is lost. Lock side: no fence is handed out twice, fences increase in real-time order (an acquisition requested
 * after another one returned gets a higher fence), and no two leases are valid at the same instant (a lease counts
 * from when acquire returned until the earlier of its local validity deadline and its release).
 */
export function checkLockHistory(
  register: FencedRegister,
  acquisitions: readonly Acquisition[],
  violations: Violations,
): { sectionsAccepted: number; sectionsRejected: number; maxFence: number } {
  const accepted = register.sections.filter((s) => s.beginOk && s.endOk).sort((a, b) => a.beginAt - b.beginAt);
  for (let i = 1; i < accepted.length; i++) {
    const prev = accepted[i - 1] as Section;
    const cur = accepted[i] as Section;
    if (cur.beginAt < (prev.endAt as number)) {
      violations.add(
        "overlap",
        `accepted sections overlap: ${prev.worker} fence ${prev.fence} [${prev.beginAt.toFixed(1)}, ${prev.endAt?.toFixed(1)}] and ${cur.worker} fence ${cur.fence} began at ${cur.beginAt.toFixed(1)}`,
      );
    }
    if (cur.fence <= prev.fence) {
      violations.add("fence-order", `accepted fence ${cur.fence} (${cur.worker}) after accepted fence ${prev.fence}`);
    }
  }
  if (register.value !== register.writes) {
    violations.add("lost-update", `register holds ${register.value} after ${register.writes} accepted writes`);
  }

  const byFence = new Map<number, Acquisition>();
  for (const a of acquisitions) {
    const other = byFence.get(a.fence);
    if (other !== undefined) {
      violations.add("duplicate-fence", `fence ${a.fence} handed to ${other.worker} and to ${a.worker}`);
    } else byFence.set(a.fence, a);
  }
  // Real-time order: sweep acquisitions by request time, tracking the highest fence among those that returned
  // strictly earlier.
  const byGot = [...acquisitions].sort((a, b) => a.gotAt - b.gotAt);
  const byReq = [...acquisitions].sort((a, b) => a.reqAt - b.reqAt);
  let j = 0;
  let best: Acquisition | undefined;
  for (const a of byReq) {
    while (j < byGot.length && (byGot[j] as Acquisition).gotAt < a.reqAt) {
      const g = byGot[j] as Acquisition;
      if (best === undefined || g.fence > best.fence) best = g;
      j++;
    }
    if (best !== undefined && a.fence <= best.fence) {
      violations.add(
        "fence-regression",
        `${a.worker} requested at ${a.reqAt} and got fence ${a.fence}, but ${best.worker} had already got fence ${best.fence} at ${best.gotAt}`,
      );
    }
  }
  // Mutual exclusion of valid leases.
  const intervals = acquisitions
    .map((a) => ({ a, from: a.gotAt, to: Math.min(a.validUntil, a.releaseAt ?? Number.POSITIVE_INFINITY) }))
    .filter((x) => x.to > x.from)
    .sort((x, y) => x.from - y.from);
  let open: (typeof intervals)[number] | undefined;
  for (const x of intervals) {
    if (open !== undefined && x.from < open.to - CLOCK_TOLERANCE_MS) {
      violations.add(
        "exclusion",
        `${open.a.worker} (fence ${open.a.fence}) valid until ${open.to} but ${x.a.worker} (fence ${x.a.fence}) held it from ${x.from}`,
      );
    }
    if (open === undefined || x.to > open.to) open = x;
  }
  return {
    sectionsAccepted: accepted.length,
    sectionsRejected: register.sections.length - accepted.length,
    maxFence: Math.max(0, ...acquisitions.map((a) => a.fence)),
  };
}
