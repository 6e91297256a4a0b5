import { TypeBoxValidatorCompiler } from "@fastify/type-provider-typebox";
import type { FastifySchemaCompiler } from "fastify";

/** A whole number as text: what an integer of a query or path may be written as (`5`, not `1.5`, `0x2` or `1e1`). */
const INTEGER_TEXT = /^-?[0-9]+$/;

/**
 * The demo's validator: TypeBox's (`TypeBoxValidatorCompiler`), whose conversion of a querystring or params value
 * would turn any number-like text into an integer (`?n=1.5` read as 1, `0x2` as 2, ` 2` as 2). An integer property of
 * those parts must therefore be written as a whole number first; anything else is the same 400 as a non-number.
 * Bodies are JSON, checked with their types as they are.
 */
export const validatorCompiler: FastifySchemaCompiler<unknown> = (route) => {
  const validate = TypeBoxValidatorCompiler(route as Parameters<typeof TypeBoxValidatorCompiler>[0]);
  if (route.httpPart === "body") return validate;
  const properties = (route.schema as { properties?: Record<string, { type?: unknown }> }).properties ?? {};
  const integers = Object.keys(properties).filter((name) => properties[name]?.type === "integer");
  if (integers.length === 0) return validate;
  return (value: unknown) => {
    const raw = (value ?? {}) as Record<string, unknown>;
    for (const name of integers) {
      const text = raw[name];
      if (typeof text === "string" && !INTEGER_TEXT.test(text)) {
        const error = { instancePath: `/${name}`, schemaPath: `#/properties/${name}/type`, keyword: "type" };
        return { error: [{ ...error, params: { type: "integer" }, message: "must be integer" }] } as never;
      }
    }
    return validate(value);
  };
};
