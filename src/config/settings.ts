// Every environment variable the service reads, grouped by concern, each with its default
// (once, here) and what it does. src/config.ts reads them through this table; `npm run
// config-docs` writes .env.example and the README's configuration tables from it, and a test
// checks that all three agree.

export interface Setting {
  name: string;
  /** The value an unset or empty variable stands for, as it would be written; none when computed or absent. */
  default?: string;
  /** Left empty in .env.example although it has a default: setting it at all changes behaviour. */
  blankInExample?: true;
  /** What it does: the comment in .env.example and the README's "what". */
  doc: string;
}

export interface SettingGroup {
  title: string;
  settings: readonly Setting[];
}

export const SETTING_GROUPS: readonly SettingGroup[] = [
  {
    title: 'HTTP',
    settings: [
      { name: 'PORT', default: '3000', doc: 'Port the API listens on.' },
      {
        name: 'HOST',
        default: '0.0.0.0',
        doc: "Address the API (and, unless WORKER_METRICS_HOST is set, the worker's metrics) binds to.",
      },
      {
        name: 'PUBLIC_BASE_URL',
        doc: 'Absolute base of every URL the API hands out (image URLs, Location). Default http://localhost:PORT.',
      },
      {
        name: 'CORS_ORIGINS',
        doc: 'Origins (comma-separated, e.g. https://app.example.com) whose browser pages may call the API, or * for any; keys still apply. Empty: no CORS, so only same-origin pages.',
      },
      { name: 'BODY_LIMIT_BYTES', default: '16777216', doc: 'Largest request body in bytes (base64 images in JSON).' },
      { name: 'LOG_LEVEL', default: 'info', doc: 'pino log level: fatal, error, warn, info, debug, trace or silent.' },
      {
        name: 'LOG_FORMAT',
        default: 'auto',
        doc: 'Log lines as JSON (json), coloured for reading (pretty), or pretty on a terminal and JSON anywhere else (auto).',
      },
    ],
  },
  {
    title: 'Redis and queues',
    settings: [
      {
        name: 'REDIS_URL',
        default: 'redis://127.0.0.1:6379',
        blankInExample: true,
        doc: 'Redis for the queues. Unset: the default, and then `npm start` starts a redis-server itself when none answers.',
      },
      {
        name: 'REDIS_STARTUP_WAIT_MS',
        default: '30000',
        doc: 'How long a starting API or worker waits for Redis to answer, logging each retry, before it exits 1 saying what to fix.',
      },
      {
        name: 'REDIS_SENTINELS',
        doc: 'Redis through Sentinel instead of REDIS_URL: the sentinels as host:port,host:port,…; needs REDIS_SENTINEL_MASTER. Connections follow a failover to the new master.',
      },
      { name: 'REDIS_SENTINEL_MASTER', doc: 'With REDIS_SENTINELS: the name of the master set the sentinels watch.' },
      {
        name: 'REDIS_CLUSTER_NODES',
        doc: 'Redis Cluster instead of REDIS_URL: some of its nodes as host:port,host:port,… (the rest are discovered). Each queue and the keys of ours used with it share one hash tag, so the queues spread over the slots.',
      },
      {
        name: 'REDIS_PASSWORD',
        doc: "With REDIS_SENTINELS or REDIS_CLUSTER_NODES: the Redis servers' password (with REDIS_URL, put it in the URL).",
      },
      {
        name: 'REDIS_SENTINEL_PASSWORD',
        doc: "With REDIS_SENTINELS: the sentinels' own password, when they have one.",
      },
      {
        name: 'REDIS_WAIT_REPLICAS',
        doc: "A change of a generation (its creation, a cancel, a delete, a worker's progress and outcome) is acted on (answered, its webhook queued, its files deleted) only once this many Redis replicas hold it (WAIT, up to 2 s; else 503 service_unavailable, or the worker's attempt retried: retry a new generation with the same Idempotency-Key), so that a failover takes back nothing the world has seen. A master left without replicas then refuses changes until one is back; 0 prefers taking them. Unset: 1 with REDIS_SENTINELS or REDIS_CLUSTER_NODES, 0 with REDIS_URL.",
      },
      {
        name: 'QUEUE_PREFIX',
        default: 'dalle',
        doc: 'Prefix of every key; several deployments may share one Redis under different prefixes. No braces: each queue gets its own Cluster hash tag under it.',
      },
      {
        name: 'QUEUE_FULL_RETRY_AFTER_SECONDS',
        default: '5',
        doc: 'Retry-After (seconds) sent with a 503 queue_full.',
      },
      {
        name: 'LOCK_DURATION_MS',
        default: '30000',
        doc: 'BullMQ job lock duration in milliseconds; renewed while a job runs.',
      },
      {
        name: 'STALLED_INTERVAL_MS',
        default: '30000',
        doc: 'How often BullMQ looks for jobs whose worker died, in milliseconds.',
      },
      { name: 'MAX_STALLED_COUNT', default: '2', doc: 'Times a job may stall (worker died) before it fails.' },
    ],
  },
  {
    title: 'Generations',
    settings: [
      {
        name: 'GENERATE_MAX_QUEUED',
        default: '1000',
        doc: 'Waiting generate jobs past which POST /generations answers 503 queue_full.',
      },
      {
        name: 'GENERATE_ATTEMPTS',
        default: '3',
        doc: 'Tries for a generation that fails for a transient reason (bad input is never retried).',
      },
      {
        name: 'GENERATE_BACKOFF_MS',
        default: '5000',
        doc: 'First retry delay for generations in milliseconds, doubled each try.',
      },
      {
        name: 'GENERATE_MAX_ACTIVE',
        doc: 'Generations a worker holds at once, their chunks batched together (src/models/SCHEDULER.md). Default: 16 on cpu, 64 on cuda.',
      },
      {
        name: 'GENERATE_CONCURRENCY',
        doc: 'Deprecated name of GENERATE_MAX_ACTIVE, read (with a warning) when that is unset.',
      },
      {
        name: 'RETENTION_SECONDS',
        default: '604800',
        doc: 'Finished generations and their images are removed after this many seconds (7 days).',
      },
      {
        name: 'IDEMPOTENCY_TTL_SECONDS',
        default: '86400',
        doc: 'How long an Idempotency-Key keeps returning the same generation, in seconds (24 h).',
      },
    ],
  },
  {
    title: 'CLIP requests (classify, embed)',
    settings: [
      {
        name: 'CLASSIFY_MAX_QUEUED',
        default: '1000',
        doc: 'Classify and embed requests waiting in the queue (admitted, not yet taken by a worker) past which another is answered 503 queue_full.',
      },
      {
        name: 'CLASSIFY_TIMEOUT_MS',
        default: '30000',
        doc: 'How long a classify or embed request waits for its answer, in milliseconds; then 504 timeout.',
      },
      {
        name: 'CLASSIFY_JOB_MAX_REQUESTS',
        default: '32',
        doc: 'Most classify (or embed) requests of one API process that travel in one job.',
      },
      {
        name: 'CLASSIFY_JOB_WAIT_MS',
        default: '2',
        doc: "Longest a classify or embed request waits to share a job while another of its API process's jobs is outstanding, in milliseconds; with none outstanding it goes at once.",
      },
      { name: 'CLASSIFY_BATCH_MAX', default: '32', doc: 'Most classify jobs run as one batch.' },
      {
        name: 'CLASSIFY_BATCH_WAIT_MS',
        default: '0',
        doc: 'Longest an idle worker waits for more classify requests before it runs a batch that is not full, in milliseconds; 0 runs at once. Requests that arrive while a batch runs form the next one either way.',
      },
    ],
  },
  {
    title: 'OpenAI-compatible API (/v1)',
    settings: [
      {
        name: 'OPENAI_WAIT_TIMEOUT_MS',
        default: '300000',
        doc: 'How long POST /v1/images/generations waits for its generation, in milliseconds.',
      },
      {
        name: 'OPENAI_MODEL_ALIASES',
        doc: 'OpenAI model names accepted under /v1 as alias=pack pairs, comma-separated (e.g. dall-e-2=demo-shapes); none by default.',
      },
    ],
  },
  {
    title: 'Models',
    settings: [
      { name: 'MODELS_DIR', default: './packs', doc: 'Folder of model packs.' },
      {
        name: 'CHECKSUM_CACHE_DIR',
        doc: "Folder recording which pack files were verified (by path, size, mtime, ctime and inode), so that an unchanged file's sha256 is computed once, not at every start; a changed file is hashed again. off: hash every file at every start. Default: ~/.cache/dalle-serve/verified-files, or a private folder under the OS temp folder when that cannot be written.",
      },
      {
        name: 'DEFAULT_MODEL',
        doc: 'Pack a generation runs on when it names none. Default: the first pack (by name) that generates.',
      },
      {
        name: 'DEFAULT_CLIP_MODEL',
        doc: 'Pack /clip/classify and /clip/embed run on when they name none (e.g. a CLIP-only pack). Default: DEFAULT_MODEL.',
      },
      {
        name: 'DEVICE',
        default: 'cpu',
        doc: 'Inference device: cpu, cuda or cuda:N; start-up fails if CUDA cannot load.',
      },
      { name: 'CPU_THREADS', doc: "onnxruntime intra-op threads on the CPU. Default: onnxruntime's choice." },
      {
        name: 'CPU_SPIN_WAIT',
        default: 'false',
        doc: "Let onnxruntime's CPU threads spin between runs (session.intra_op.allow_spinning) instead of sleeping: a little less latency on a machine that runs nothing else, at the price of cores kept busy while the worker waits for work (measured: 2.7× the CPU per classify batch at the worker's pace).",
      },
      {
        name: 'DEFAULT_CANDIDATES',
        doc: "Candidates a generation samples when its request names none (and for quality auto in /v1). Workers publish theirs with their packs (GET /models), so the API applies the serving workers' value. Default: 32 on cpu (seconds), 512 on cuda.",
      },
      {
        name: 'GENERATE_MEMORY_BUDGET_MB',
        doc: "Memory a generation batch may hold, in MiB, beside the weights: its rows while they sample (key/value cache, the step's values, logits, images) and the images its decoder holds at once, per each pack's measured figures (GET /models: row_bytes, decode_image_bytes). Each row brings the room to decode its image, up to a quarter of the budget for images (at least one), past which rows share it; a pack that cannot fit one row beside one decoded image stops the worker at start. Default: half the free memory once the packs are loaded on cpu; unbounded on cuda (set it from the card's free memory).",
      },
      {
        name: 'GENERATE_BATCH_CANDIDATES',
        doc: 'Candidate rows per engine call, shared by the active generations. Default: 32 on cpu, 512 on cuda.',
      },
      {
        name: 'SAMPLE_BATCH',
        doc: 'Deprecated name of GENERATE_BATCH_CANDIDATES, read (with a warning) when that is unset.',
      },
    ],
  },
  {
    title: 'Worker process',
    settings: [
      {
        name: 'WORKER_QUEUES',
        default: 'generate,classify,webhooks',
        doc: 'Queues this worker process serves, comma-separated.',
      },
      {
        name: 'WORKER_METRICS_PORT',
        default: '9464',
        doc: "Port of the worker's Prometheus /metrics (0: any free port).",
      },
      { name: 'WORKER_METRICS_HOST', doc: "Address the worker's metrics bind to. Default: HOST." },
      {
        name: 'SHUTDOWN_TIMEOUT_MS',
        default: '30000',
        doc: 'How long SIGTERM waits for running jobs before returning them to the queue, in milliseconds.',
      },
    ],
  },
  {
    title: 'Images from clients',
    settings: [
      { name: 'IMAGE_FETCH_TIMEOUT_MS', default: '10000', doc: 'Timeout for fetching an image URL, in milliseconds.' },
      {
        name: 'IMAGE_MAX_BYTES',
        default: '10485760',
        doc: 'Largest image accepted by URL, base64 or upload, in bytes (10 MiB).',
      },
      {
        name: 'CLIP_REQUEST_MAX_IMAGE_BYTES',
        default: '67108864',
        doc: 'The bytes of all the images of one classify or embed request together, or of a completion’s image and mask (64 MiB); past it 413 images_too_large.',
      },
      {
        name: 'IMAGE_FETCH_MAX_REDIRECTS',
        default: '3',
        doc: 'Redirects an image URL may take; each target is checked like the first URL.',
      },
      {
        name: 'IMAGE_MAX_PIXELS',
        default: '40000000',
        doc: 'Largest image the worker decodes, in pixels (width x height); larger ones get 400 invalid_image.',
      },
      {
        name: 'OUTBOUND_ALLOW',
        doc: 'Hosts, IP addresses and CIDRs (comma-separated) that image URLs and webhook receivers may reach although private, loopback or link-local; everything else non-public is refused. Empty: none.',
      },
    ],
  },
  {
    title: 'Object storage',
    settings: [
      { name: 'STORAGE', default: 'fs', doc: 'Where images are stored: fs (a local folder, served by the API) or s3.' },
      {
        name: 'IMAGE_URL_TTL_SECONDS',
        default: '3600',
        doc: 'Lifetime of image URLs in responses, in seconds (at most 604800).',
      },
      { name: 'STORAGE_DIR', default: './data/images', doc: 'fs: folder that holds the images.' },
      {
        name: 'FILE_URL_SECRET',
        doc: 'fs: HMAC key (16+ characters) for signed /files/ URLs. Unset: one random secret made on first start and kept in Redis, shared by every API and worker process (set it to keep URLs valid across a Redis that lost its data).',
      },
      { name: 'S3_ENDPOINT', doc: 's3: custom endpoint for S3-compatible stores (MinIO, R2). Default: AWS.' },
      { name: 'S3_REGION', default: 'us-east-1', doc: 's3: region.' },
      { name: 'S3_BUCKET', doc: 's3: bucket (required when STORAGE=s3).' },
      {
        name: 'S3_FORCE_PATH_STYLE',
        default: 'false',
        doc: 's3: path-style URLs (http://host/bucket/key); MinIO needs true.',
      },
      {
        name: 'S3_ACCESS_KEY_ID',
        doc: 's3: access key id; set both keys or neither (then the AWS default credential chain applies).',
      },
      { name: 'S3_SECRET_ACCESS_KEY', doc: 's3: secret access key.' },
      {
        name: 'S3_PUBLIC_BASE_URL',
        doc: 's3: public base (public bucket or CDN) for image URLs; when unset, URLs are presigned.',
      },
      {
        name: 'S3_PRESIGN_EXPIRES_SECONDS',
        default: '3600',
        doc: 's3: longest lifetime of a presigned URL, in seconds (SigV4 allows at most 604800).',
      },
      {
        name: 'S3_REQUEST_TIMEOUT_MS',
        default: '30000',
        doc: "s3: each attempt of a request fails after this long (the client retries twice), so a store that stops answering fails the job's storage step instead of holding it forever.",
      },
      { name: 'S3_CONNECT_TIMEOUT_MS', default: '5000', doc: 's3: opening a connection fails after this long.' },
    ],
  },
  {
    title: 'Webhooks',
    settings: [
      {
        name: 'WEBHOOK_SECRET',
        doc: 'whsec_ + base64 of 24-64 random bytes. Each API_KEYS key signs with a secret derived from it and the key (GET /webhook-secret shows a key its own); stored keys sign with their own; it signs itself only in open mode. Unset: requests naming a webhook get 400 (stored keys still sign).',
      },
      {
        name: 'WEBHOOK_TIMEOUT_MS',
        default: '10000',
        doc: 'Limit for one delivery attempt, connect to last byte, in milliseconds.',
      },
      { name: 'WEBHOOK_ATTEMPTS', default: '8', doc: 'Delivery attempts before a webhook is dropped.' },
      { name: 'WEBHOOK_BACKOFF_MS', default: '1000', doc: 'First retry delay in milliseconds, doubled each attempt.' },
      { name: 'WEBHOOK_CONCURRENCY', default: '8', doc: 'Webhook deliveries run at once per worker.' },
    ],
  },
  {
    title: 'Events (webhooks and GET /generations/:id/events)',
    settings: [
      {
        name: 'PROGRESS_EVENT_INTERVAL_MS',
        default: '1000',
        doc: 'Least time between two progress events of one generation within a stage, in milliseconds (a stage change is always one).',
      },
      {
        name: 'SSE_HEARTBEAT_MS',
        default: '15000',
        doc: 'An idle event stream gets a comment line this often, in milliseconds, so proxies keep it open.',
      },
    ],
  },
  {
    title: 'Access (API keys, limits)',
    settings: [
      {
        name: 'API_KEYS',
        doc: 'API keys as name:key pairs, comma-separated (keys of at least 16 characters; hashed on load). More keys: `npm run keys`.',
      },
      {
        name: 'AUTH_MODE',
        default: 'keys',
        doc: 'keys: every request needs a key (from API_KEYS or the key store), whatever Redis holds. open: no key needed, everyone is `anonymous` (npm start sets it when API_KEYS is unset; refused together with API_KEYS).',
      },
      {
        name: 'RATE_LIMIT_PER_MINUTE',
        default: '0',
        doc: 'Requests per minute per key, over a sliding 60 s window (0: unlimited); a key in the store may override it.',
      },
      {
        name: 'MAX_CONCURRENT_GENERATIONS',
        default: '0',
        doc: 'Generations queued or processing at once per key (0: unlimited); a key in the store may override it.',
      },
      {
        name: 'CANDIDATES_PER_DAY',
        default: '0',
        doc: 'Candidates sampled per UTC day per key (0: unlimited); a key in the store may override it.',
      },
    ],
  },
];

const BY_NAME = new Map(SETTING_GROUPS.flatMap((group) => group.settings.map((setting) => [setting.name, setting])));

/** The setting called `name`; a name missing from the table is a programming error. */
export function setting(name: string): Setting {
  const found = BY_NAME.get(name);
  if (!found) throw new Error(`${name} is not in the settings table (src/config/settings.ts)`);
  return found;
}
