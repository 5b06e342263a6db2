// The playground: generate from a prompt, watch the progress arrive over the event stream, see
// the ranked candidates, and classify one of them against labels of your own.
import { ProblemError, api, storeKey, storedKey } from './api.js';
import { followEvents } from './events.js';
import { clearUnknownWords, loadModels, showUnknownWords, watchModelInputs } from './models.js';
import { clearError, clearFieldErrors, showProblem } from './problems.js';

const $ = (id) => document.getElementById(id);
// Where each stage's progress sits on the one bar.
const STAGE_SPAN = { sampling: [0, 0.85], decoding: [0.85, 0.9], reranking: [0.9, 0.95], storing: [0.95, 1] };

function announce(text) {
  $('status').textContent = text;
}

/** Whether the server answers 401 to a request without a key. */
async function keysRequired() {
  const response = await fetch('/models');
  return response.status === 401;
}

function setProgress(progress) {
  const [from, to] = STAGE_SPAN[progress.stage] ?? [0, 1];
  const share = progress.total > 0 ? progress.completed / progress.total : 0;
  $('progress').setAttribute('value', String(from + (to - from) * share));
  $('progress-label').textContent = `${progress.stage}: ${progress.completed} / ${progress.total}`;
}

/** Image URLs of the local store are the API's own: read them from this page's origin. */
function sameOrigin(url) {
  const parsed = new URL(url, location.href);
  return parsed.pathname.startsWith('/files/') ? parsed.pathname + parsed.search : url;
}

function renderGrid(generation) {
  const prompt = generation.input.prompt;
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
      item.append(figure);
      return item;
    }),
  );
  $('results').hidden = false;
}

/** Takes away everything an earlier run left, so nothing on the page looks current that is not. */
function clearRun() {
  clearError();
  clearFieldErrors();
  $('progress-section').hidden = true;
  $('progress').setAttribute('value', '0');
  $('progress-label').textContent = 'Queued';
  $('results').hidden = true;
  $('grid').replaceChildren();
  clearUnknownWords();
  $('classify').hidden = true;
  $('scores').replaceChildren();
  selected = undefined;
}

let selected;

async function generate(event) {
  event.preventDefault();
  clearRun();
  const button = $('generate');
  button.disabled = true;
  try {
    const number = (id) => ($(id).value.trim() === '' ? undefined : Number($(id).value));
    const body = {
      prompt: $('prompt').value.trim(),
      candidates: number('candidates'),
      n: number('n'),
      seed: number('seed'),
      ...($('model').value && { model: $('model').value }),
    };
    const accepted = await api('/generations', { method: 'POST', json: body });
    $('progress-section').hidden = false;
    announce('Generating');
    const finished = await followEvents(
      `/generations/${encodeURIComponent(accepted.id)}/events`,
      (name, generation) => {
        if (name === 'start') $('progress-label').textContent = 'Started';
        if (generation.progress) setProgress(generation.progress);
      },
    );
    if (finished.status !== 'succeeded') {
      throw new Error(finished.error?.message ?? `the generation was ${finished.status}`);
    }
    $('progress').setAttribute('value', '1');
    $('progress-label').textContent = `Done: ${finished.images.length} of ${finished.input.candidates} candidates kept`;
    const unknown = showUnknownWords(finished);
    renderGrid(finished);
    announce([`${finished.images.length} images ready`, unknown].filter(Boolean).join('. '));
  } catch (error) {
    // The error is all there is of this run: no bar left behind looking current.
    $('progress-section').hidden = true;
    showProblem(error, $('generate-form'));
  } finally {
    button.disabled = false;
  }
}

function selectForClassify(button, img) {
  for (const other of $('grid').querySelectorAll('button')) other.setAttribute('aria-pressed', 'false');
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
    // The image's own bytes, uploaded: the service is never asked to fetch a URL.
    const image = await fetch(selected.src);
    if (!image.ok) throw new Error(`could not read the image (HTTP ${image.status})`);
    const form = new FormData();
    form.append('image', await image.blob(), 'candidate.png');
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
  watchModelInputs();
  const keyInput = $('api-key');
  keyInput.value = storedKey();
  keyInput.addEventListener('change', () => {
    storeKey(keyInput.value.trim());
    clearError();
    loadModels().catch(showProblem);
  });
  try {
    if (await keysRequired()) $('key-field').hidden = false;
    if ($('key-field').hidden || storedKey()) await loadModels();
    else showProblem(new ProblemError(401, { detail: 'This server needs an API key: enter it above.' }));
  } catch (error) {
    showProblem(error);
  }
}

start();
