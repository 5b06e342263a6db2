// Validation with two Ajv instances: bodies are strict (a number where a string belongs is
// a 400, never coerced); query strings, params and headers are text on the wire, so their
// numbers are parsed.
import { Ajv, type ErrorObject } from 'ajv';
import type { FastifyInstance, FastifySchemaCompiler } from 'fastify';
import { type FieldError, ServiceError } from '../../errors.js';

// verbose: each error carries its schema, whose description explains a refusal better than a regex.
const shared = { useDefaults: true, removeAdditional: false, allErrors: false, strict: false, verbose: true } as const;

export function installValidators(app: FastifyInstance): void {
  const strictAjv = new Ajv({ ...shared, coerceTypes: false });
  const textAjv = new Ajv({ ...shared, coerceTypes: 'array' });
  const compiler: FastifySchemaCompiler<unknown> = ({ schema, httpPart, contentType }) => {
    // Multipart parts stream in after validation; the handler checks them as it reads them.
    if (contentType === 'multipart/form-data') return () => true;
    return (httpPart === 'body' ? strictAjv : textAjv).compile(schema as object);
  };
  app.setValidatorCompiler(compiler);
}

function joinPath(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

function fieldOf(error: ErrorObject, context: string): string {
  let path = error.instancePath
    .split('/')
    .slice(1)
    .map((segment) =>
      /^[0-9]+$/.test(segment) ? `[${segment}]` : `.${segment.replace(/~1/g, '/').replace(/~0/g, '~')}`,
    )
    .join('')
    .replace(/^\./, '');
  if (error.keyword === 'required') path = joinPath(path, String(error.params.missingProperty));
  if (error.keyword === 'additionalProperties') path = joinPath(path, String(error.params.additionalProperty));
  return path || context;
}

function descriptionOf(error: ErrorObject): string | undefined {
  const schema: unknown = error.parentSchema;
  return schema && typeof schema === 'object' && 'description' in schema && typeof schema.description === 'string'
    ? schema.description
    : undefined;
}

function messageOf(error: ErrorObject): string {
  const description = descriptionOf(error);
  switch (error.keyword) {
    case 'required':
      return 'is required';
    case 'additionalProperties':
      return 'is not a known property';
    case 'minProperties':
    case 'maxProperties':
      return 'must have exactly one of its properties';
    // A pattern says nothing to a reader; the field's description says what is accepted.
    case 'pattern':
      return description ? `is not accepted: ${description}` : 'is not in the accepted form';
    case 'minItems':
      return description ? `${error.message ?? 'has too few items'}: ${description}` : (error.message ?? 'is invalid');
    default:
      return error.message ?? 'is invalid';
  }
}

/** Fastify's validation error as our validation_failed, naming the field. */
export function validationFailed(errors: ErrorObject[], context: string): ServiceError {
  const fields: FieldError[] = errors.map((error) => ({ field: fieldOf(error, context), message: messageOf(error) }));
  const first = fields[0] ?? { field: context, message: 'is invalid' };
  const where = context === 'body' ? '' : `${context} `;
  return new ServiceError('validation_failed', `${where}${first.field} ${first.message}`, { errors: fields });
}
