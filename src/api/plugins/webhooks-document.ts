// The OpenAPI 3.1 `webhooks` entry: what a generation's webhook receiver is sent (docs/webhooks.md).
const signatureHeader = (name: string, description: string) => ({
  name,
  in: 'header' as const,
  required: true,
  description,
  schema: { type: 'string' as const },
});

export const WEBHOOKS = {
  generationEvent: {
    post: {
      operationId: 'generationEvent',
      tags: ['generations'],
      summary: 'A generation started, progressed or finished',
      description:
        'Sent to the `webhook` URL of a generation for each event in its `webhook_events_filter`, signed with Standard Webhooks. A 2xx answer acknowledges it; a 4xx gives it up; anything else is retried with backoff.',
      parameters: [
        signatureHeader('webhook-id', 'The same for every retry of one event'),
        signatureHeader('webhook-timestamp', 'Unix seconds when this attempt was signed'),
        signatureHeader('webhook-signature', '`v1,<base64 HMAC-SHA256>` with the key’s webhook secret'),
      ],
      requestBody: {
        required: true,
        content: { 'application/json': { schema: { $ref: '#/components/schemas/WebhookEvent' } } },
      },
      responses: {
        '2XX': { description: 'Received' },
        '4XX': { description: 'Refused: the event is not sent again' },
      },
    },
  },
};
