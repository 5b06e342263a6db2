// The inference core's error codes. The list lives in the dependency-free layer so that
// src/models (which imports only lib) raises them and the error catalogue (src/errors.ts)
// must give each one its status, retry rule and title.
export const MODEL_ERROR_CODES = [
  'invalid_image',
  'validation_failed',
  'unknown_model',
  'invalid_device',
  'device_unavailable',
  'pack_invalid_manifest',
  'pack_file_missing',
  'pack_checksum_mismatch',
  'engine_closed',
] as const;
export type ModelErrorCode = (typeof MODEL_ERROR_CODES)[number];
