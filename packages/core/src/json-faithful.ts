import * as validate from "./validate.js";

/** The state of one walk: the objects on the way down, and the keys from the value to the one being looked at. */
interface Walk {
  readonly argument: string;
  readonly seen: Set<object>;
  readonly path: (string | number)[];
}

/** Where a walk is, for a message: `value.a[0].b`. */
function pathOf(walk: Walk): string {
  return walk.path.reduce<string>((at, k) => (typeof k === "number" ? `${at}[${k}]` : `${at}.${k}`), walk.argument);
}

/**
 * Throws (TypeError naming where) for what `JSON.stringify` would store as something else: `null` for NaN and
 * ±Infinity, for an invalid Date and for `undefined`, a function or a symbol in an array; `{}` for an object of a class
 * without enumerable properties (a Map, a Set, an Error...); or for a BigInt and a circular reference, which it throws
 * on. Follows `toJSON` as JSON does (with the same key). A property whose value is `undefined`, a function or a symbol
 * is left out, as JSON leaves it out (the key is simply absent once decoded).
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
    if (ArrayBuffer.isView(obj)) {
      // A typed array is stored as an object of its indices ({"0":1,"1":2}), decoded as that object, not an array.
      const name = obj.constructor.name;
      throw new TypeError(
        `${pathOf(walk)} is ${name.startsWith("Int") ? "an" : "a"} ${name}, which JSON stores as an object of its indices ({"0":...}) ` +
          "(convert it first, e.g. Array.from(value))",
      );
    }
    const keys = Object.keys(obj);
    const proto = Object.getPrototypeOf(obj);
    if (keys.length === 0 && proto !== Object.prototype && proto !== null) {
      const ctor = (proto as { constructor?: { name?: unknown } }).constructor?.name;
      const name = typeof ctor === "string" && ctor !== "" ? ctor : "class instance";
      throw new TypeError(
        `${pathOf(walk)} is ${/^[aeiou]/i.test(name) ? "an" : "a"} ${name}, which JSON stores as {} ` +
          "(convert it first, e.g. Object.fromEntries(map) or [...set], or give its class a toJSON())",
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

/** Walks `value` (see {@link checkFaithful}), naming it `argument` in messages. */
function check(value: unknown, argument: string): void {
  checkFaithful(value, "", false, { argument, seen: new Set(), path: [] });
}

/**
 * `JSON.stringify(value)` for a value that `JSON.parse` gives back as JSON stores it, and a TypeError for one JSON
 * would silently store as something else. The one JSON rule of every default codec of Coordis.
 *
 * Stored as JSON stores it: strings, finite numbers, booleans, null, plain objects and arrays of those; a value whose
 * type declares its JSON form with `toJSON` as that form (a Date as its ISO-8601 string, a Decimal or an ObjectId as
 * what its `toJSON()` returns); an object of a class with enumerable fields as a plain object of those fields (an
 * ORM entity); a property holding `undefined`, a function or a symbol is left out (the key is absent once decoded).
 *
 * Refused, with a TypeError naming where (`value.tags is a Set, which JSON stores as {}`): NaN and ±Infinity, an
 * invalid Date, and `undefined`, a function or a symbol in an array (JSON stores `null`); a Map, a Set, an Error or any
 * object of a class without enumerable fields (JSON stores `{}`); a typed array (JSON stores an object of its
 * indices); a BigInt and a cycle anywhere, and a value with no
 * JSON text at all (`undefined`, a function, a symbol, an object whose `toJSON()` returns `undefined`). What it does
 * not look for, as JSON: `-0` is stored as `0`, and symbol-keyed or non-enumerable properties (and properties added to
 * an array) are not stored.
 *
 * The check walks the value only when the text holds `null`, `{}` or `{"0":`, the traces of what JSON changes silently (or
 * when `JSON.stringify` threw, to say where): other values cost one `JSON.stringify` and one scan of its text. The
 * walk calls `toJSON` (and getters) again.
 * @param argument the name of the value in messages (default `value`), e.g. `meta` gives `meta.tags is a Set...`
 * @throws TypeError naming the first value JSON would change or cannot encode; what `toJSON` throws
 */
export function faithfulJsonText(value: unknown, argument = "value"): string {
  let text: string | undefined;
  try {
    text = JSON.stringify(value);
  } catch (err) {
    check(value, argument);
    throw err;
  }
  if (typeof text !== "string") {
    const what =
      typeof (value as { toJSON?: unknown } | null | undefined)?.toJSON === "function"
        ? `${validate.describeValue(value)} whose toJSON() returns undefined`
        : validate.describeValue(value);
    throw new TypeError(`${argument} is ${what}, which JSON cannot encode`);
  }
  if (text.includes("null") || text.includes("{}") || text.includes('{"0":')) check(value, argument);
  return text;
}
