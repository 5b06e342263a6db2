// What GET /models says about each generating model, on the page: its example prompts and
// vocabulary, the prompt's words it never learned (while typing, and after a generation from the
// generation's own `unknown_words`), and its default candidates as the Candidates input's value
// until the user types one of their own.
import { api } from './api.js';
import { describedBy } from './problems.js';

const $ = (id) => document.getElementById(id);
/** Candidates when a model publishes no default: what the service samples on a CPU. */
const FALLBACK_CANDIDATES = 32;
/** Examples offered after a generation with unknown words. */
const EXAMPLES_OFFERED = 3;

const models = new Map();
let candidatesTyped = false;

/**
 * The prompt's words as the service splits them (src/lib/prompt-words.ts): lower-cased runs of
 * letters and digits (inner apostrophes and hyphens kept), each once. A hint only: the
 * generation's `unknown_words` is the service's word.
 */
export function promptWords(prompt) {
  const words =
    prompt
      .normalize('NFKC')
      .toLowerCase()
      .match(/[\p{L}\p{N}]+(?:['’-][\p{L}\p{N}]+)*/gu) ?? [];
  return [...new Set(words)];
}

function unknownWords(prompt, model) {
  if (!model?.vocabulary) return [];
  const known = new Set(model.vocabulary);
  return promptWords(prompt).filter((word) => !known.has(word));
}

export function modelNamed(name) {
  return models.get(name);
}

function selectedModel() {
  return models.get($('model').value);
}

function exampleItems(examples) {
  return examples.map((text) => {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.textContent = text;
    button.onclick = () => {
      $('prompt').value = text;
      // Setting the value fires no input event: the prompt's listeners (the warning, a field error) hear it here.
      $('prompt').dispatchEvent(new Event('input'));
      $('prompt').focus();
    };
    item.append(button);
    return item;
  });
}

/** Under the prompt, as it is typed: the words the selected model never learned. */
function warnUnknownWords() {
  const model = selectedModel();
  const words = unknownWords($('prompt').value, model);
  $('prompt-words').textContent = words.length > 0 ? `${model.name} never learned: ${words.join(', ')}` : '';
  $('prompt-words').hidden = words.length === 0;
  describedBy($('prompt'), 'prompt-words', words.length > 0);
}

/** Candidates from the model's default, unless the user typed their own. */
function prefillCandidates(model) {
  if (candidatesTyped) return;
  const candidates = model?.generation?.default_candidates ?? FALLBACK_CANDIDATES;
  $('candidates').value = String(candidates);
  if (Number($('n').value) > candidates) $('n').value = String(candidates);
}

/** Example prompts and the vocabulary, when /models lists them for the model. */
function describeModel(model) {
  const examples = model?.examples ?? [];
  $('examples').hidden = examples.length === 0;
  $('examples')
    .querySelector('ul')
    .replaceChildren(...exampleItems(examples));
  const vocabulary = model?.vocabulary ?? [];
  $('vocabulary').hidden = vocabulary.length === 0;
  $('vocabulary').querySelector('p').textContent = vocabulary.join(', ');
  prefillCandidates(model);
  warnUnknownWords();
}

export async function loadModels() {
  const select = $('model');
  const { data } = await api('/models');
  const generators = data.filter((model) => model.generation);
  models.clear();
  for (const model of generators) models.set(model.name, model);
  select.replaceChildren(
    ...generators.map((model) => {
      const option = new Option(model.name, model.name);
      option.selected = model.default_for.includes('generations');
      return option;
    }),
  );
  select.onchange = () => describeModel(selectedModel());
  describeModel(selectedModel());
}

/** Listeners that outlive a reload of the models (a new API key). */
export function watchModelInputs() {
  $('prompt').addEventListener('input', warnUnknownWords);
  $('candidates').addEventListener('input', () => (candidatesTyped = true));
}

export function clearUnknownWords() {
  $('unknown-words').hidden = true;
  $('unknown-words').replaceChildren();
}

/**
 * After a generation: the prompt's words its model never learned, what the model knows, and
 * some of its examples. Returns the sentence to announce, or '' when every word was known.
 */
export function showUnknownWords(generation) {
  const words = generation.unknown_words ?? [];
  if (words.length === 0) return '';
  const model = models.get(generation.model ?? generation.input.model ?? '');
  const name = model?.name ?? 'The model';
  const said = document.createElement('p');
  const strong = document.createElement('strong');
  strong.textContent = `${name} never learned: ${words.join(', ')}.`;
  said.append(strong, ' It drew something anyway, but not from those words.');
  const parts = [said];
  if (model?.vocabulary?.length) {
    const knows = document.createElement('p');
    knows.className = 'hint';
    knows.textContent = `It knows: ${model.vocabulary.join(', ')}.`;
    parts.push(knows);
  }
  const examples = (model?.examples ?? []).slice(0, EXAMPLES_OFFERED);
  if (examples.length > 0) {
    const label = document.createElement('p');
    label.id = 'unknown-words-examples';
    label.textContent = 'Try one of its examples:';
    const list = document.createElement('ul');
    list.setAttribute('aria-labelledby', label.id);
    list.append(...exampleItems(examples));
    parts.push(label, list);
  }
  $('unknown-words').replaceChildren(...parts);
  $('unknown-words').hidden = false;
  return strong.textContent;
}
