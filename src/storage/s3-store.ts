import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { parseBaseUrl } from './base-url.js';
import type { ObjectStore, ObjectUrl, S3StorageOptions, StoredObject } from './object-store.js';
import {
  assertValidBody,
  assertValidContentType,
  assertValidKey,
  assertValidLifetime,
  assertValidPrefix,
} from './validation.js';

// SigV4 refuses presigned URLs valid for longer than seven days.
const MAX_PRESIGN_SECONDS = 604_800;
const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

function checkOptions(options: S3StorageOptions): void {
  if (!options.bucket) throw new Error('s3 storage needs a bucket');
  if (!options.region) throw new Error('s3 storage needs a region');
  if (Boolean(options.accessKeyId) !== Boolean(options.secretAccessKey)) {
    throw new Error('s3 storage needs both accessKeyId and secretAccessKey, or neither');
  }
  const lifetime = options.presignExpiresSeconds;
  if (!Number.isSafeInteger(lifetime) || lifetime < 1 || lifetime > MAX_PRESIGN_SECONDS) {
    throw new Error(`s3 storage presignExpiresSeconds must be 1 to ${MAX_PRESIGN_SECONDS}, got ${lifetime}`);
  }
  for (const [name, value] of [
    ['requestTimeoutMs', options.requestTimeoutMs],
    ['connectTimeoutMs', options.connectTimeoutMs],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 1)
      throw new Error(`s3 storage ${name} must be a positive whole number of ms, got ${value}`);
  }
}

function isMissing(error: unknown): boolean {
  return error instanceof S3ServiceException && (error.name === 'NoSuchKey' || error.$metadata.httpStatusCode === 404);
}

function createClient(options: S3StorageOptions): S3Client {
  return new S3Client({
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    ...(options.endpoint ? { endpoint: parseBaseUrl('s3 storage endpoint', options.endpoint) } : {}),
    ...(options.accessKeyId && options.secretAccessKey
      ? { credentials: { accessKeyId: options.accessKeyId, secretAccessKey: options.secretAccessKey } }
      : {}),
    // Checksums only where S3 demands them: many S3-compatible stores reject the newer
    // default trailers, and a small image body gains nothing from them.
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    requestHandler: {
      connectionTimeout: options.connectTimeoutMs,
      requestTimeout: options.requestTimeoutMs,
      throwOnRequestTimeout: true,
    },
  });
}

/** Objects in one bucket of any S3-compatible store (AWS, MinIO, R2). */
export function createS3Store(options: S3StorageOptions): ObjectStore {
  checkOptions(options);
  const publicBaseUrl =
    options.publicBaseUrl === undefined ? undefined : parseBaseUrl('s3 storage publicBaseUrl', options.publicBaseUrl);
  const client = createClient(options);
  const Bucket = options.bucket;

  async function put(key: string, body: Uint8Array, contentType: string): Promise<void> {
    assertValidKey(key);
    assertValidBody(body);
    assertValidContentType(contentType);
    await client.send(new PutObjectCommand({ Bucket, Key: key, Body: body, ContentType: contentType }));
  }

  async function get(key: string): Promise<StoredObject | null> {
    assertValidKey(key);
    try {
      const response = await client.send(new GetObjectCommand({ Bucket, Key: key }));
      const body = response.Body ? await response.Body.transformToByteArray() : new Uint8Array();
      return { body, contentType: response.ContentType ?? DEFAULT_CONTENT_TYPE };
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async function remove(key: string): Promise<void> {
    assertValidKey(key);
    await client.send(new DeleteObjectCommand({ Bucket, Key: key }));
  }

  async function deletePrefix(prefix: string): Promise<number> {
    assertValidPrefix(prefix);
    let deleted = 0;
    let ContinuationToken: string | undefined;
    do {
      // A page holds at most 1000 keys, which is also DeleteObjects' batch limit.
      const page = await client.send(new ListObjectsV2Command({ Bucket, Prefix: prefix, ContinuationToken }));
      const keys = (page.Contents ?? []).flatMap((item) => (item.Key ? [{ Key: item.Key }] : []));
      if (keys.length > 0) {
        const result = await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: keys, Quiet: true } }));
        const failed = result.Errors ?? [];
        if (failed.length > 0) {
          const first = failed[0];
          throw new Error(
            `s3 storage could not delete ${failed.length} objects under ${JSON.stringify(prefix)}, ` +
              `first ${JSON.stringify(first.Key)}: ${first.Code ?? 'error'} ${first.Message ?? ''}`.trim(),
          );
        }
        deleted += keys.length;
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
    return deleted;
  }

  async function url(key: string, expiresInSeconds: number): Promise<ObjectUrl> {
    assertValidKey(key);
    assertValidLifetime(expiresInSeconds);
    if (publicBaseUrl !== undefined) {
      // A public bucket or CDN does not expire links; the object lives until retention removes it.
      return { url: `${publicBaseUrl}/${key}`, expiresAt: new Date(Date.now() + expiresInSeconds * 1000) };
    }
    const lifetime = Math.min(expiresInSeconds, options.presignExpiresSeconds);
    const expiresAt = new Date(Date.now() + lifetime * 1000);
    const signed = await getSignedUrl(client, new GetObjectCommand({ Bucket, Key: key }), { expiresIn: lifetime });
    return { url: signed, expiresAt };
  }

  return { put, get, delete: remove, deletePrefix, url };
}
