/**
 * Keeps label values bounded: each label keeps at most `maxValues` distinct values; later new values are reported
 * as `"other"`. Coordis primitives only put bounded facts in attributes (rule names, outcomes, algorithms), so
 * this is a safety net against a misconfiguration turning into a cardinality explosion, not a normal path.
 */
export class LabelGuard {
  readonly #seen = new Map<string, Set<string>>();

  constructor(private readonly maxValues = 50) {}

  /** `value` as a label value for `label`, `"other"` once the label has too many distinct values. */
  value(label: string, value: unknown): string {
    const text = value === undefined || value === null || value === "" ? "none" : String(value).slice(0, 64);
    let values = this.#seen.get(label);
    if (values === undefined) {
      values = new Set();
      this.#seen.set(label, values);
    }
    if (values.has(text)) return text;
    if (values.size >= this.maxValues) return "other";
    values.add(text);
    return text;
  }
}
