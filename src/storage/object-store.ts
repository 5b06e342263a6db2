/** An object in the store: its bytes and the content type it was written with. */
export interface StoredObject {
  body: Uint8Array;
  contentType: string;
}

/** A URL that serves an object's bytes directly, and when it stops working. */
export interface ObjectUrl {
  url: string;
  expiresAt: Date;
}

/**
 * Where generated images live. Keys are slash-separated paths of safe characters
 * (see keys.ts); every store rejects any other key before touching the backend.
 */
export interface ObjectStore {
  /** Writes the object whole; a reader sees the old object or the new one, never a part. */
  put(key: string, body: Uint8Array, contentType: string): Promise<void>;
  /** The object, or null when there is none under the key. */
  get(key: string): Promise<StoredObject | null>;
  /** Removes the object; removing a missing object is not an error. */
  delete(key: string): Promise<void>;
  /** Removes every object whose key starts with the (non-empty) prefix; returns how many. */
  deletePrefix(prefix: string): Promise<number>;
  /** A URL that serves the bytes for at least `expiresInSeconds`. */
  url(key: string, expiresInSeconds: number): Promise<ObjectUrl>;
}

/** Resolves the file URL signing secret; called on each use, so it should cache. */
export type SigningSecretSource = () => Promise<string>;

export interface FsStorageOptions {
  kind: 'fs';
  /** Folder that holds the objects; created on first write. */
  dir: string;
  /** Absolute base URL of the API, which serves `/files/<key>` to signed requests. */
  publicBaseUrl: string;
  /**
   * HMAC key for file URLs (at least 16 characters), or where to get it on first use (a
   * secret shared through Redis by processes that were given none).
   */
  signingSecret?: string | SigningSecretSource;
}

export interface S3StorageOptions {
  kind: 's3';
  /** Custom endpoint for S3-compatible stores (MinIO, R2); AWS when absent. */
  endpoint?: string;
  region: string;
  bucket: string;
  /** `http://host/bucket/key` instead of `http://bucket.host/key`; MinIO needs true. */
  forcePathStyle: boolean;
  /** Both or neither; when absent the AWS default credential chain applies. */
  accessKeyId?: string;
  secretAccessKey?: string;
  /** When set, URLs are `<publicBaseUrl>/<key>` (a public bucket or CDN) instead of presigned. */
  publicBaseUrl?: string;
  /** Upper bound for presigned URL lifetimes (SigV4 allows at most 604800 s). */
  presignExpiresSeconds: number;
  /** Each attempt of a request fails after this long: a store that stops answering cannot hold a job forever. */
  requestTimeoutMs: number;
  /** Opening a connection fails after this long (an unreachable host would otherwise take the OS's minutes). */
  connectTimeoutMs: number;
}

export type StorageOptions = FsStorageOptions | S3StorageOptions;
