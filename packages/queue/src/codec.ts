import { encodeText, InvalidArgumentError, jsonText, validate } from "@coordis/core";

/** Turns job data (or results) into the strings stored in Redis and back. */
export interface Codec<T> {
  /** Encodes a value; throwing rejects the add (or fails the job, for a result) with that error. */
  encode(value: T): string;
  /** Decodes what `encode` produced. */
  decode(text: string): T;
}

/**
 * Throws (TypeError naming where) for what `JSON.stringify` would store as something else: `null` for NaN and
 * ±Infinity, for an invalid Date and for `undefined`, a function or a symbol in an array; `{}` for an object of a class
 * without enumerable properties (a Map, a Set, an Error...); or for a BigInt and a circular reference, which it throws
 * on. Follows `toJSON` as JSON does. A property whose value is `undefined`, a function or a symbol is left out, as
 * JSON leaves it out (the key is simply absent once decoded).
 */
function checkFaithful(raw: unknown, key: string, inArray: boolean, walk: Walk): void {
  let v = raw;
  if ((typeof v === "object" && v !== null) || typeof v === "function" || typeof v === "bigint") {
    const toJSON = (v as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") v = toJSON.call(v, key);
  }
  if (v instanceof Number) v = Number(v);
  else if (v instanceof String || v instanceof Boolean) return;
  switch (typeof v) {
    case "string":
    case "boolean":
      return;
    case "number":
      if (!Number.isFinite(v)) throw new TypeError(`${pathOf(walk)} is ${v}, which JSON stores as null`);
      return;
    case "bigint":
      throw new TypeError(`${pathOf(walk)} is a BigInt, which JSON cannot encode (convert it to a string or a number)`);
    case "undefined":
    case "function":
    case "symbol":
      if (inArray) {
        throw new TypeError(`${pathOf(walk)} is ${validate.describeValue(v)}, which JSON stores as null in an array`);
      }
      return;
  }
  if (v === null) {
    if (raw instanceof Date) throw new TypeError(`${pathOf(walk)} is an invalid Date, which JSON stores as null`);
    return;
  }
  const obj = v as object;
  if (walk.seen.has(obj)) throw new TypeError(`${pathOf(walk)} is a circular reference`);
  walk.seen.add(obj);
  const { path } = walk;
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) {
      path.push(i);
      checkFaithful(obj[i], String(i), true, walk);
      path.pop();
    }
  } else {
    const keys = Object.keys(obj);
    const proto = Object.getPrototypeOf(obj);
    if (keys.length === 0 && proto !== Object.prototype && proto !== null) {
      const ctor = (proto as { constructor?: { name?: unknown } }).constructor?.name;
      const name = typeof ctor === "string" && ctor !== "" ? ctor : "class instance";
      throw new TypeError(
        `${pathOf(walk)} is ${/^[aeiou]/i.test(name) ? "an" : "a"} ${name}, which JSON stores as {} ` +
          "(convert it first, e.g. Object.fromEntries(map) or [...set])",
      );
    }
    for (const k of keys) {
      path.push(k);
      checkFaithful((obj as Record<string, unknown>)[k], k, false, walk);
      path.pop();
    }
  }
  walk.seen.delete(obj);
}

/** The state of one {@link checkFaithful} walk: the objects on the way down, and the keys to the current value. */
interface Walk {
  readonly seen: Set<object>;
  readonly path: (string | number)[];
}

/** Where a walk is, for a message: `value.a[0].b`. */
function pathOf(walk: Walk): string {
  return walk.path.reduce<string>((at, k) => (typeof k === "number" ? `${at}[${k}]` : `${at}.${k}`), "value");
}

/** Walks `value` (see {@link checkFaithful}). */
function check(value: unknown): void {
  checkFaithful(value, "", false, { seen: new Set(), path: [] });
}

/**
 * `JSON.stringify(value)` for a value `JSON.parse` gives back as it was (up to JSON's own rules: a Date comes back as
 * its ISO string, a class instance as a plain object of its enumerable properties, a property holding `undefined`, a
 * function or a symbol is left out). The check walks the value only when the text holds `null` or `{}`, the traces of
 * what JSON changes silently (or when JSON.stringify threw, to say where): other values cost one JSON.stringify.
 * @throws TypeError naming the first value JSON would change or cannot encode
 */
export function faithfulJson(value: unknown): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    check(value);
    throw err;
  }
  if (typeof text !== "string")
    throw new TypeError(`value is ${validate.describeValue(value)}, which JSON cannot encode`);
  if (text.includes("null") || text.includes("{}")) check(value);
  return text;
}

/**
 * The default codec of job data: JSON, `undefined` stored as the empty string, refusing values JSON would change
 * silently or cannot encode (see {@link faithfulJson}): a Map or a Set (stored as `{}` by JSON), NaN and ±Infinity
 * (stored as `null`), a BigInt, a function or a symbol at the top level or in an array, a cycle. Such data rejects the
 * add with an InvalidArgumentError naming `data` (nothing is sent).
 */
export const jsonCodec: Codec<unknown> = Object.freeze({
  encode: (value: unknown) => (value === undefined ? "" : faithfulJson(value)),
  decode: (text: string) => (text === "" ? undefined : JSON.parse(text)),
});

/**
 * The default codec of results: JSON with its own rules (NaN stored as `null`, a Map as `{}`), `undefined` stored as
 * the empty string. A result is checked after the job's work is done, when refusing it would end the job dead: only
 * what JSON cannot encode at all (a BigInt, a cycle, a function or a symbol as the result) fails it.
 */
export const jsonResultCodec: Codec<unknown> = Object.freeze({
  encode: (value: unknown) => (value === undefined ? "" : jsonText(value)),
  decode: jsonCodec.decode,
});

/** Validates a `codec` option (or `undefined`). @throws InvalidArgumentError */
export function parseCodec<T>(argument: string, value: unknown): Codec<T> | undefined {
  if (value === undefined) return undefined;
  const c = validate.options<Codec<T>>(argument, value);
  validate.func(`${argument}.encode`, c.encode);
  validate.func(`${argument}.decode`, c.decode);
  return c as Codec<T>;
}

/**
 * Encodes `value` with `codec`, as an argument of a public call: a value the codec cannot encode, or whose encoding
 * is larger than `maxBytes`, is an InvalidArgumentError naming `argument`.
 */
export function encodeArgument<T>(codec: Codec<T>, argument: string, value: T, maxBytes: number): string {
  const text = encodeText(codec, value, argument);
  if (overBytes(text, maxBytes))
    throw new InvalidArgumentError(argument, `is larger than ${maxBytes} bytes once encoded`);
  return text;
}

/** Whether `text` takes more than `maxBytes` bytes in UTF-8 (at most 3 per UTF-16 unit: most texts need no count). */
export function overBytes(text: string, maxBytes: number): boolean {
  return text.length * 3 > maxBytes && Buffer.byteLength(text, "utf8") > maxBytes;
}
