/**
 * Reading a report handed to the observer. A report is the caller's object: a getter that throws or a Proxy must
 * never make the observer throw (it is called on the hot path of every primitive, and directly by users), nor leave
 * a report half counted. Each field is read once, so a getter that answers differently each time cannot either.
 */

/** What a field that could not be read is taken as: an object, so as a label value it is `"invalid"`. */
const UNREADABLE: object = Object.freeze({ unreadable: true });

/** `target[key]`, or an object standing for "unreadable" (a label `"invalid"`) when reading it throws. */
function readField(target: object, key: string): unknown {
  try {
    return (target as Record<string, unknown>)[key];
  } catch {
    return UNREADABLE;
  }
}

/** The fields of a report the metrics read, each read once; `attribute(name)` reads one of its attributes. */
export interface ReportFields {
  readonly primitive: unknown;
  /** An operation's `op`, `outcome`, `durationMs`; an event's `type` (the other kind's fields are undefined). */
  readonly op: unknown;
  readonly outcome: unknown;
  readonly durationMs: unknown;
  readonly type: unknown;
  readonly name: unknown;
  /** An attribute's value; undefined when the report's `attributes` is not an object or cannot be read. */
  attribute(name: string): unknown;
}

/** The fields of an operation report (`kind` "operation") or an event, or undefined when it is not an object. */
export function reportFields(report: unknown, kind: "operation" | "event"): ReportFields | undefined {
  if (report === null || typeof report !== "object") return undefined;
  const operation = kind === "operation";
  const attributes = readField(report, "attributes");
  return {
    primitive: readField(report, "primitive"),
    op: operation ? readField(report, "op") : undefined,
    outcome: operation ? readField(report, "outcome") : undefined,
    durationMs: operation ? readField(report, "durationMs") : undefined,
    type: operation ? undefined : readField(report, "type"),
    name: readField(report, "name"),
    attribute: (name) =>
      attributes !== null && typeof attributes === "object" && attributes !== UNREADABLE
        ? readField(attributes, name)
        : undefined,
  };
}
