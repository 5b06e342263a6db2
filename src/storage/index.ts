import { createFsStore } from './fs-store.js';
import type { ObjectStore, StorageOptions } from './object-store.js';
import { createS3Store } from './s3-store.js';

export type {
  FsStorageOptions,
  ObjectStore,
  ObjectUrl,
  S3StorageOptions,
  SigningSecretSource,
  StorageOptions,
  StoredObject,
} from './object-store.js';
export { resolveSigningSecret, verifyFileSignature } from './signed-url.js';
export { InvalidStorageArgumentError, assertValidKey, isValidKey } from './validation.js';
export { createFsStore } from './fs-store.js';
export { createS3Store } from './s3-store.js';

/** The store the configuration names: a local folder (default) or an S3 bucket. */
export function createObjectStore(options: StorageOptions): ObjectStore {
  switch (options.kind) {
    case 'fs':
      return createFsStore(options);
    case 's3':
      return createS3Store(options);
    default:
      throw new Error(
        `unknown storage kind ${JSON.stringify((options as { kind: unknown }).kind)}: expected "fs" or "s3"`,
      );
  }
}
