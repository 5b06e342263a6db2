// The one way a JSON value kept in Redis is read back: parsed, then checked against its schema,
// so the type a reader gets is the type the value has, not a cast.
import type { Static, TSchema } from '@fastify/type-provider-typebox';
import { Ajv, type ValidateFunction } from 'ajv';

// Formats (date-time) are the API's to check on the way in; a stored value is checked for shape.
const ajv = new Ajv({
  allErrors: false,
  strict: false,
  coerceTypes: false,
  useDefaults: false,
  validateFormats: false,
});

export interface Codec<T> {
  encode(value: T): string;
  /** The value, or an error naming `what` when the text is not JSON of the schema's shape. */
  decode(text: string, what: string): T;
}

export class StoredValueError extends Error {
  constructor(what: string, reason: string) {
    super(`${what} in Redis is not valid: ${reason}`);
    this.name = 'StoredValueError';
  }
}

export function jsonCodec<S extends TSchema>(schema: S): Codec<Static<S>> {
  const validate: ValidateFunction<Static<S>> = ajv.compile<Static<S>>(schema);
  return {
    encode: (value) => JSON.stringify(value),
    decode(text, what) {
      let value: unknown;
      try {
        value = JSON.parse(text);
      } catch (error) {
        throw new StoredValueError(what, error instanceof Error ? error.message : String(error));
      }
      if (!validate(value)) throw new StoredValueError(what, ajv.errorsText(validate.errors));
      return value;
    },
  };
}
