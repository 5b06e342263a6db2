// The playground: generate from a prompt, watch the progress arrive over the event stream (and
// the queue position and time left, when the API gives them), cancel, see the ranked candidates,
// classify one of them against labels of your own, or complete one (or an upload: completion.js).
import { ProblemError, api, storeKey, storedKey } from './api.js';
import {
  clearKept,
  completeGenerated,
  completionParts,
  currentSource,
  refreshGrid,
  showKept,
  watchCompletionInputs,
} from './completion.js';
import { followEvents } from './events.js';
import { clearUnknownWords, loadModels, modelNamed, showUnknownWords, watchModelInputs } from './models.js';
import { clearError, clearFieldErrors, showProblem } from './problems.js';

const $ = (id) => document.getElementById(id);
// Where each stage's progress sits on the one bar.
const STAGE_SPAN = { sampling: [0, 0.85], decoding: [0.85, 0.9], reranking: [0.9, 0.95], storing: [0.95, 1] };
/** How often GET /generations/:id is read for the queue position and the time left. */
const POLL_MS = 2000;
const RUNNING = ['queued', 'processing'];

function announce(text) {
  $('status').textContent = text;
}

/** Whether the server answers 401 to a request without a key. */
async function keysRequired() {
  const response = await fetch('/models');
  return response.status === 401;
}

function seconds(eta) {
  const s = Math.max(1, Math.round(eta));
  return s < 90 ? `${s} s` : `${Math.round(s / 60)} min`;
}

/**
 * The progress label for what is known of the running generation: its status and progress from
 * the event stream, `queue_position` and `eta_seconds` from whichever of the stream and the
 * polling saw them last. Either may be absent (an API without them) or null: then nothing.
 */
function statusText({ status, progress, queue_position: ahead, eta_seconds: eta }) {
  const about = typeof eta === 'number' ? `about ${seconds(eta)}` : '';
  if (status === 'queued') {
    const place = Number.isInteger(ahead) ? (ahead === 0 ? 'next in line' : `${ahead} ahead`) : '';
    const more = [place, about].filter(Boolean).join(', ');
    return more ? `Queued — ${more}` : 'Queued';
  }
  const done = progress ? `${progress.stage}: ${progress.completed} / ${progress.total}` : 'Started';
  return about ? `${done} — ${about} left` : done;
}

function setProgress(progress) {
  const [from, to] = STAGE_SPAN[progress.stage] ?? [0, 1];
  const share = progress.total > 0 ? progress.completed / progress.total : 0;
  $('progress').setAttribute('value', String(from + (to - from) * share));
}

/**
 * Reads GET /generations/:id now and every POLL_MS while the generation runs, for the fields
 * only it may carry. Stops at the first answer without them (this API has none to give), at an
 * error (the event stream still reports the outcome), or when the returned function is called.
 */
function pollQueue(id, onView) {
  let stopped = false;
  let timer;
  const tick = async () => {
    let view;
    try {
      view = await api(`/generations/${encodeURIComponent(id)}`);
    } catch {
      return; // The stream, not the polling, says how the generation ends.
    }
    if (stopped || !('queue_position' in view || 'eta_seconds' in view)) return;
    onView(view);
    if (RUNNING.includes(view.status)) timer = setTimeout(tick, POLL_MS);
  };
  void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** Image URLs of the local store are the API's own: read them from this page's origin. */
function sameOrigin(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname.startsWith('/files/') ? parsed.pathname + parsed.search : url;
}

/** An image's bytes, read by the page: the service is never asked to fetch a URL. */
async function bytesOf(src) {
  const response = await fetch(src);
  if (!response.ok) throw new Error(`could not read the image (HTTP ${response.status})`);
  return response.blob();
}

async function completeImage(img, image) {
  clearError();
  try {
    await completeGenerated(await bytesOf(img.src), `candidate-${image.rank}.${image.format}`, img.alt.toLowerCase());
    announce(`${img.alt} chosen to complete`);
  } catch (error) {
    showProblem(error);
  }
}

function renderGrid(generation) {
  const prompt = generation.input.prompt;
  const completes = modelNamed(generation.model ?? '')?.generation?.completes === true;
  $('grid').replaceChildren(
    ...generation.images.map((image) => {
      const item = document.createElement('li');
      const figure = document.createElement('figure');
      const button = document.createElement('button');
      button.type = 'button';
      button.setAttribute('aria-pressed', 'false');
      const img = document.createElement('img');
      img.src = sameOrigin(image.url);
      img.width = image.width;
      img.height = image.height;
      img.alt = `Candidate ranked ${image.rank} for “${prompt}”`;
      button.append(img);
      button.onclick = () => selectForClassify(button, img);
      const caption = document.createElement('figcaption');
      caption.textContent = `#${image.rank} · CLIP ${image.score.toFixed(3)} · seed ${image.seed}`;
      figure.append(button, caption);
      if (completes) {
        const complete = document.createElement('button');
        complete.type = 'button';
        complete.className = 'secondary complete';
        const which = document.createElement('span');
        which.className = 'visually-hidden';
        which.textContent = ` #${image.rank}`;
        complete.append('Complete this', which);
        complete.onclick = () => completeImage(img, image);
        figure.append(complete);
      }
      item.append(figure);
      return item;
    }),
  );
  $('results').hidden = false;
}

/**
 * The request: JSON, or with an image to complete a multipart form (the image goes as it is, the
 * server resizes it) with `keep_rows` or a mask.
 */
async function request(body) {
  const parts = await completionParts();
  if (parts.length === 0) return { json: body };
  const form = new FormData();
  for (const [field, value] of Object.entries(body)) if (value !== undefined) form.append(field, String(value));
  for (const [field, value, name] of parts) {
    if (name === undefined) form.append(field, value);
    else form.append(field, value, name);
  }
  return { body: form };
}

/** Takes away everything an earlier run left, so nothing on the page looks current that is not. */
function clearRun() {
  clearError();
  clearFieldErrors();
  $('progress-section').hidden = true;
  $('progress').setAttribute('value', '0');
  $('progress-label').textContent = 'Queued';
  $('cancel').hidden = true;
  $('results').hidden = true;
  $('grid').replaceChildren();
  clearKept();
  clearUnknownWords();
  $('classify').hidden = true;
  $('scores').replaceChildren();
  selected = undefined;
}

/** The generation being followed: its id, for Cancel, and whether Cancel was pressed. */
let running;
let selected;

async function generate(event) {
  event.preventDefault();
  clearRun();
  const button = $('generate');
  button.disabled = true;
  let stopPolling = () => {};
  try {
    const number = (id) => ($(id).value.trim() === '' ? undefined : Number($(id).value));
    const body = {
      prompt: $('prompt').value.trim(),
      candidates: number('candidates'),
      n: number('n'),
      seed: number('seed'),
      ...($('model').value && { model: $('model').value }),
    };
    const source = currentSource();
    const accepted = await api('/generations', { method: 'POST', ...(await request(body)) });
    running = { id: accepted.id };
    const state = { status: accepted.status, progress: null };
    const show = (view) => {
      if (running?.canceling) return;
      for (const field of ['status', 'progress', 'queue_position', 'eta_seconds']) {
        if (field in view) state[field] = view[field];
      }
      $('progress-label').textContent = statusText(state);
    };
    $('progress-section').hidden = false;
    $('cancel').hidden = false;
    $('cancel').disabled = false;
    announce('Generating');
    stopPolling = pollQueue(accepted.id, (view) => {
      // Only the polling's own fields: the stream is ahead of it on status and progress.
      show({ queue_position: view.queue_position ?? null, eta_seconds: view.eta_seconds ?? null });
    });
    const finished = await followEvents(`/generations/${encodeURIComponent(accepted.id)}/events`, (name, view) => {
      if (view.progress) setProgress(view.progress);
      if (RUNNING.includes(view.status)) show(view);
    });
    stopPolling();
    $('cancel').hidden = true;
    if (finished.status === 'canceled') {
      $('progress-label').textContent = 'Canceled';
      announce('Canceled');
      return;
    }
    if (finished.status !== 'succeeded') {
      throw new Error(finished.error?.message ?? `the generation was ${finished.status}`);
    }
    $('progress').setAttribute('value', '1');
    const completion = finished.input.completion;
    const cells = completion
      ? `; ${completion.kept_cells} of ${completion.grid[0] * completion.grid[1]} cells kept from the image`
      : '';
    $('progress-label').textContent =
      `Done: ${finished.images.length} of ${finished.input.candidates} candidates kept${cells}`;
    const unknown = showUnknownWords(finished);
    showKept(completion, source);
    renderGrid(finished);
    announce([`${finished.images.length} images ready`, unknown].filter(Boolean).join('. '));
  } catch (error) {
    stopPolling();
    // The error is all there is of this run: no bar or Cancel left behind looking current.
    $('progress-section').hidden = true;
    $('cancel').hidden = true;
    showProblem(error, $('generate-form'));
  } finally {
    running = undefined;
    button.disabled = false;
  }
}

async function cancel() {
  if (!running) return;
  const { id } = running;
  running.canceling = true;
  $('cancel').disabled = true;
  $('progress-label').textContent = 'Canceling…';
  try {
    // The outcome comes over the event stream: `completed` with status canceled.
    await api(`/generations/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
  } catch (error) {
    // It finished first: the stream brings that outcome instead.
    if (error instanceof ProblemError && error.code === 'generation_finished') return;
    if (running?.id === id) {
      running.canceling = false;
      $('cancel').disabled = false;
    }
    showProblem(error);
  }
}

function selectForClassify(button, img) {
  for (const other of $('grid').querySelectorAll('button[aria-pressed]')) other.setAttribute('aria-pressed', 'false');
  button.setAttribute('aria-pressed', 'true');
  selected = img;
  $('classify-image').src = img.src;
  $('classify-image').alt = img.alt;
  $('scores').replaceChildren();
  $('classify').hidden = false;
  $('labels').focus();
}

async function classify(event) {
  event.preventDefault();
  clearError();
  clearFieldErrors($('classify-form'));
  $('scores').replaceChildren();
  if (!selected) return;
  try {
    const form = new FormData();
    form.append('image', await bytesOf(selected.src), 'candidate.png');
    for (const label of $('labels').value.split(',')) {
      if (label.trim()) form.append('labels', label.trim());
    }
    const result = await api('/clip/classify', { method: 'POST', body: form });
    $('scores').replaceChildren(
      ...result.results[0].labels.map(({ label, score }) => {
        const item = document.createElement('li');
        const bar = document.createElement('span');
        bar.className = 'bar';
        bar.style.width = `${(score * 100).toFixed(1)}%`;
        item.append(`${label}: ${(score * 100).toFixed(1)}%`, bar);
        return item;
      }),
    );
    announce('Classified');
  } catch (error) {
    showProblem(error, $('classify-form'));
  }
}

async function start() {
  $('generate-form').addEventListener('submit', generate);
  $('classify-form').addEventListener('submit', classify);
  $('cancel').addEventListener('click', cancel);
  watchModelInputs();
  watchCompletionInputs();
  const keyInput = $('api-key');
  keyInput.value = storedKey();
  keyInput.addEventListener('change', () => {
    storeKey(keyInput.value.trim());
    clearError();
    loadModels().then(refreshGrid, showProblem);
  });
  try {
    if (await keysRequired()) $('key-field').hidden = false;
    if ($('key-field').hidden || storedKey()) {
      await loadModels();
      refreshGrid();
    } else showProblem(new ProblemError(401, { detail: 'This server needs an API key: enter it above.' }));
  } catch (error) {
    showProblem(error);
  }
}

start();
