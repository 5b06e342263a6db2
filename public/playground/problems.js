// Errors in words. A problem's field error is shown next to the input it names (aria-invalid,
// aria-describedby, announced as an alert); anything else shows the problem's detail in the
// page's alert box. Validator phrasing ("must be >= 1") is put into plain words, and a pattern
// is never shown: the API already says what it accepts instead (src/api/plugins/validation.ts).
import { ProblemError } from './api.js';

const $ = (id) => document.getElementById(id);

/** The API's field names: the input that holds each, and what the page calls it. */
const FIELDS = {
  prompt: { input: 'prompt', name: 'The prompt' },
  candidates: { input: 'candidates', name: 'Candidates' },
  n: { input: 'n', name: 'Keep (n)' },
  seed: { input: 'seed', name: 'The seed' },
  model: { input: 'model', name: 'The model' },
  image: { input: 'image', name: 'The image' },
  keep_rows: { input: 'keep-rows', name: 'Keep top rows' },
  mask: { input: 'cells', name: 'The mask' },
  labels: { input: 'labels', name: 'The labels' },
};

const PHRASES = [
  [/must NOT have fewer than 1 (characters|items)/g, 'must not be empty'],
  [/must NOT have fewer than (\d+) (characters|items)/g, 'must have at least $1 $2'],
  [/must NOT have more than (\d+) (characters|items)/g, 'must have at most $1 $2'],
  [/must be >= (-?[\d.]+)/g, 'must be at least $1'],
  [/must be <= (-?[\d.]+)/g, 'must be at most $1'],
  [/must be > (-?[\d.]+)/g, 'must be more than $1'],
  [/must be < (-?[\d.]+)/g, 'must be less than $1'],
  [/must be integer/g, 'must be a whole number'],
  [/must be number/g, 'must be a number'],
  [/must match pattern "[^"]*"/g, 'is not in the accepted form'],
  [/must match format "([^"]*)"/g, 'must be a valid $1'],
];

export function inWords(message) {
  return PHRASES.reduce((text, [pattern, words]) => text.replace(pattern, words), String(message));
}

/** Adds (or takes away) `id` among the elements that describe `input`. */
export function describedBy(input, id, add) {
  const ids = new Set((input.getAttribute('aria-describedby') ?? '').split(' ').filter(Boolean));
  if (add) ids.add(id);
  else ids.delete(id);
  if (ids.size > 0) input.setAttribute('aria-describedby', [...ids].join(' '));
  else input.removeAttribute('aria-describedby');
}

function clearFieldError(input) {
  const id = `${input.id}-error`;
  $(id)?.remove();
  input.removeAttribute('aria-invalid');
  describedBy(input, id, false);
}

/** Removes the field errors shown inside `form` (every form when none is given). */
export function clearFieldErrors(form = document) {
  for (const input of form.querySelectorAll('[aria-invalid="true"]')) clearFieldError(input);
}

function showFieldError(input, text) {
  clearFieldError(input);
  const note = document.createElement('p');
  note.id = `${input.id}-error`;
  note.className = 'field-error';
  note.setAttribute('role', 'alert');
  note.textContent = text;
  input.after(note);
  input.setAttribute('aria-invalid', 'true');
  describedBy(input, note.id, true);
  // Editing the field takes its error away: it speaks of a value no longer there.
  input.addEventListener('input', () => clearFieldError(input), { once: true });
}

export function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

/**
 * Shows `error`: each field error of a problem next to its input in `form` when the form has
 * it; whatever is left (another field, no field, not a problem at all) in the alert box.
 */
export function showProblem(error, form = document) {
  const rest = [];
  if (error instanceof ProblemError && error.errors.length > 0) {
    for (const { field, message } of error.errors) {
      // `labels[2]` is the labels input's; `images[0].url` has no input here.
      const known = FIELDS[/^[A-Za-z_]+/.exec(String(field))?.[0]];
      const input = known && form.querySelector(`#${known.input}`);
      if (input) showFieldError(input, `${known.name} ${inWords(message)}`);
      else rest.push(`${field} ${inWords(message)}`);
    }
    if (rest.length === 0) return;
  }
  const box = $('error');
  box.textContent = rest.length > 0 ? rest.join('; ') : inWords(error instanceof Error ? error.message : String(error));
  box.hidden = false;
}
