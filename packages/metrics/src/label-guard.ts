/** Longest label value, UTF-16 code units; a longer value is cut there (never inside a surrogate pair). */
const MAX_VALUE_LENGTH = 64;

/**
 * Keeps label values bounded: each label keeps at most `maxValues` distinct values; later new values are reported
 * as `"other"`. Coordis primitives only put bounded facts in attributes (rule names, outcomes, algorithms), so
 * this is a safety net against a misconfiguration turning into a cardinality explosion, not a normal path.
 */
export class LabelGuard {
  readonly #seen = new Map<string, Set<string>>();

  constructor(private readonly maxValues = 50) {}

  /**
   * `value` as a label value for `label`, `"other"` once the label has too many distinct values. A missing or empty
   * value is `"none"`; one that is not a string, number, boolean or bigint (an object, a function) is `"invalid"`.
   */
  value(label: string, value: unknown): string {
    const text = labelText(value);
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

/**
 * The text of a label value, well-formed Unicode; never throws (`String()` throws on a null-prototype object or a
 * Symbol's coercion).
 */
function labelText(value: unknown): string {
  if (value === undefined || value === null || value === "") return "none";
  const type = typeof value;
  if (type !== "string" && type !== "number" && type !== "boolean" && type !== "bigint") return "invalid";
  // A lone surrogate is replaced (U+FFFD), as encoding the scrape would: the scrape stays valid Unicode, and values
  // that differ only there are one series, not two that encode to the same line.
  const text = String(value).toWellFormed();
  if (text.length <= MAX_VALUE_LENGTH) return text;
  // A high surrogate at the cut would leave half a character: invalid UTF-16, mangled when the scrape is encoded.
  const last = text.charCodeAt(MAX_VALUE_LENGTH - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? MAX_VALUE_LENGTH - 1 : MAX_VALUE_LENGTH);
}
