export { deliverWebhook, WEBHOOK_USER_AGENT } from './deliver.js';
export type { WebhookDelivery, WebhookDeliveryResult } from './deliver.js';
export { WebhookDeliveryError, isRetryableStatus } from './errors.js';
export { generateWebhookSecret, parseWebhookSecret } from './secret.js';
export { signWebhook } from './sign.js';
