// The lifecycle's transitions as Lua, one script each (see lifecycle.ts for what they promise).
// Each runs as one atomic call: it checks the state, changes the record, appends the event and
// lists what it owes, or changes nothing.
import { RedisScript } from '../queue/script.js';

/** Entries kept per event log; the terminal event is the last one written, so never trimmed away. */
const EVENT_LOG_MAX_EVENTS = 1000;

// Shared by the transitions. KEYS: record, event log, event ids, webhook outbox, open set,
// storage garbage. ARGV: id, now (ms), event log TTL (s), the generation's storage prefix.
// `append` writes an event once per id, a copy of the record's state, and owes its webhook when
// the generation asked for that event; `finish` makes the generation terminal. What a transition
// owes (webhooks to queue, prefixes to delete) is returned after its outcome, for the caller to
// settle at once; the outbox and the garbage list keep them until someone has.
const LIBRARY = `
local record, events, event_ids, outbox, open, garbage = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local id, now, ttl, prefix = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local TERMINAL = { succeeded = true, failed = true, canceled = true }
local owed_webhooks, owed_garbage = {}, {}

local function append(event_id, name)
  if redis.call('HEXISTS', event_ids, event_id) == 1 then return end
  local f = redis.call('HMGET', record, 'status', 'started_at', 'completed_at', 'progress', 'result', 'error',
    'webhook', 'webhook_events')
  local entry = { 'id', event_id, 'event', name, 'at', now, 'status', f[1] }
  local copied = { 'started_at', 'completed_at', 'progress', 'result', 'error' }
  for i, field in ipairs(copied) do
    if f[i + 1] then
      entry[#entry + 1] = field
      entry[#entry + 1] = f[i + 1]
    end
  end
  local entry_id = redis.call('XADD', events, 'MAXLEN', ${EVENT_LOG_MAX_EVENTS}, '*', unpack(entry))
  redis.call('HSET', event_ids, event_id, entry_id)
  redis.call('EXPIRE', events, ttl)
  redis.call('EXPIRE', event_ids, ttl)
  if f[7] and string.find(',' .. (f[8] or '') .. ',', ',' .. name .. ',', 1, true) then
    local owed = cjson.encode({ generation_id = id, event = name, event_id = event_id, url = f[7] })
    redis.call('ZADD', outbox, now, owed)
    owed_webhooks[#owed_webhooks + 1] = owed
  end
end

local function delete_later(storage_prefix)
  redis.call('ZADD', garbage, now, storage_prefix)
  owed_garbage[#owed_garbage + 1] = storage_prefix
end

local function finish(status)
  redis.call('HSET', record, 'status', status, 'completed_at', now)
  redis.call('ZREM', open, id)
  if status ~= 'succeeded' then delete_later(prefix) end
  append(id .. '-completed', 'completed')
end

local function reply(outcome, detail)
  local out = { outcome, tostring(detail or ''), #owed_webhooks }
  for _, owed in ipairs(owed_webhooks) do out[#out + 1] = owed end
  for _, owed in ipairs(owed_garbage) do out[#out + 1] = owed end
  return out
end
`;

// Runs the next attempt: 'run' with its number; 'finished' when there is nothing to run (terminal,
// or canceled now because a cancel was requested while no attempt ran); 'missing' without a record.
export const START = new RedisScript(`${LIBRARY}
local f = redis.call('HMGET', record, 'status', 'cancel_requested_at')
if not f[1] then return reply('missing') end
if TERMINAL[f[1]] then return reply('finished', f[1]) end
if f[2] then
  finish('canceled')
  return reply('finished', 'canceled')
end
local attempt = redis.call('HINCRBY', record, 'attempt', 1)
-- Earlier attempts are dead, or alive without their lock and about to find out: their images go.
for earlier = 1, attempt - 1 do delete_later(prefix .. 'a' .. earlier .. '-') end
redis.call('HSET', record, 'status', 'processing', 'started_at', now, 'enqueued', '1')
append(id .. '-start', 'start')
return reply('run', attempt)
`);

// ARGV[5]: attempt, ARGV[6]: progress JSON, ARGV[7]: the progress event's id, or '' for none.
export const PROGRESS = new RedisScript(`${LIBRARY}
local f = redis.call('HMGET', record, 'status', 'attempt')
if f[1] ~= 'processing' or f[2] ~= ARGV[5] then return reply('stale') end
redis.call('HSET', record, 'progress', ARGV[6])
if ARGV[7] ~= '' then append(ARGV[7], 'progress') end
return reply('recorded')
`);

// ARGV[5]: attempt, ARGV[6]: result JSON. 'committed' (now or by this attempt before), 'canceled'
// (a cancel was requested first), 'stale' (a later attempt runs), a terminal status, or 'missing'.
export const COMMIT = new RedisScript(`${LIBRARY}
local f = redis.call('HMGET', record, 'status', 'attempt', 'cancel_requested_at')
if not f[1] then return reply('missing') end
if f[2] ~= ARGV[5] then return reply('stale') end
if f[1] == 'succeeded' then return reply('committed') end
if TERMINAL[f[1]] then return reply(f[1]) end
if f[1] ~= 'processing' then return reply('stale') end
if f[3] then
  finish('canceled')
  return reply('canceled')
end
redis.call('HSET', record, 'result', ARGV[6])
finish('succeeded')
return reply('committed')
`);

// ARGV[5]: attempt, or '' for whichever runs; ARGV[6]: error JSON; ARGV[7]: '1' when final.
// 'queued' (to be retried), 'failed', 'canceled' (a cancel was requested), 'stale', a terminal
// status, or 'missing'.
export const FAIL = new RedisScript(`${LIBRARY}
local f = redis.call('HMGET', record, 'status', 'attempt', 'cancel_requested_at')
if not f[1] then return reply('missing') end
if ARGV[5] ~= '' and f[2] ~= ARGV[5] then return reply('stale') end
if TERMINAL[f[1]] then return reply(f[1]) end
if f[3] then
  finish('canceled')
  return reply('canceled')
end
if ARGV[7] == '1' then
  redis.call('HSET', record, 'error', ARGV[6])
  finish('failed')
  return reply('failed')
end
redis.call('HSET', record, 'status', 'queued')
return reply('queued')
`);

// 'canceled' (it was queued), 'requested' (it runs: the attempt stops at its next chunk and
// ends canceled), 'finished' with its terminal status, or 'missing'.
export const CANCEL = new RedisScript(`${LIBRARY}
local status = redis.call('HGET', record, 'status')
if not status then return reply('missing') end
if TERMINAL[status] then return reply('finished', status) end
redis.call('HSETNX', record, 'cancel_requested_at', now)
if status == 'processing' then return reply('requested') end
finish('canceled')
return reply('canceled')
`);

// KEYS[7], KEYS[8]: the id index and the owner's. 'deleted', 'unfinished' with its status, or 'missing'.
export const DELETE = new RedisScript(`${LIBRARY}
local status = redis.call('HGET', record, 'status')
if not status then return reply('missing') end
if not TERMINAL[status] then return reply('unfinished', status) end
redis.call('DEL', record, events, event_ids)
redis.call('ZREM', open, id)
redis.call('ZREM', KEYS[7], id)
redis.call('ZREM', KEYS[8], id)
delete_later(prefix)
return reply('deleted')
`);

// KEYS: record, id index, owner's index, open set, and the idempotency record when there is one.
// ARGV: id, now, owner, input JSON, created_at, webhook URL or '', its events (comma-separated),
// then the idempotency record's value and TTL. An idempotency record already there wins: its
// value comes back for the caller to replay.
export const CREATE = new RedisScript(`
if KEYS[5] then
  local previous = redis.call('GET', KEYS[5])
  if previous then return { 'replay', previous } end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return { 'exists' } end
redis.call('HSET', KEYS[1], 'owner', ARGV[3], 'input', ARGV[4], 'created_at', ARGV[5], 'status', 'queued', 'attempt', 0)
if ARGV[6] ~= '' then redis.call('HSET', KEYS[1], 'webhook', ARGV[6], 'webhook_events', ARGV[7]) end
if KEYS[5] then redis.call('HSET', KEYS[1], 'idempotency_key', KEYS[5]) end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[2], ARGV[1])
if KEYS[5] then redis.call('SET', KEYS[5], ARGV[8], 'EX', ARGV[9]) end
return { 'created' }
`);

// Undoes CREATE for a generation whose job never made it onto the queue: only while it is
// queued, never started and not known to be enqueued. KEYS as CREATE's; ARGV: id. 1: undone.
export const DISCARD = new RedisScript(`
local f = redis.call('HMGET', KEYS[1], 'status', 'attempt', 'enqueued')
if f[1] ~= 'queued' or f[2] ~= '0' or f[3] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
if KEYS[5] then
  local value = redis.call('GET', KEYS[5])
  if value and string.find(value, ARGV[1], 1, true) then redis.call('DEL', KEYS[5]) end
end
return 1
`);

/** Sets a field only on a record that exists (a plain HSET would bring a deleted one back). */
export const SET_IF_PRESENT = new RedisScript(`
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
`);
