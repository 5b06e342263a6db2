// The image to complete: an uploaded file or a generated image (its bytes, fetched by the page:
// the service is never asked to fetch a URL), shown under the model's grid from GET /models. What
// is kept is its top rows (`keep_rows`), or the cells not marked on the grid, sent as a PNG mask
// of the image's size: alpha 0 where a cell is drawn anew, opaque elsewhere (OpenAI's convention).
import { ProblemError } from './api.js';
import { modelNamed } from './models.js';

const $ = (id) => document.getElementById(id);

/** `{ blob, name, url, width, height }`; width and height 0 when this browser cannot decode it. */
let source;
/** The cells marked on the grid (1: draw anew), row by row; null until the user marks one. */
let marked = null;
/** The grid the cells are drawn for, [rows, cols]. */
let grid = [0, 0];
/** Changes with each image chosen, so a slow decode never shows an image chosen before. */
let choosing = 0;
/** The pointer's drag: whether it marks or unmarks, and the cell it is over. */
let drag;
/** The object URL the result's figure shows, taken back when it goes. */
let keptUrl;

function modelGrid() {
  return modelNamed($('model').value)?.generation?.image_grid ?? [0, 0];
}

function keepBy() {
  return document.querySelector('input[name="keep-by"]:checked').value;
}

function setKeepBy(value) {
  document.querySelector(`input[name="keep-by"][value="${value}"]`).checked = true;
}

/** Cells from the Keep top rows input: 1 below the rows it keeps. */
function rowCells() {
  const keep = Number.parseInt($('keep-rows').value, 10);
  const [rows, cols] = grid;
  return Uint8Array.from({ length: rows * cols }, (_, index) =>
    Math.floor(index / cols) >= (Number.isInteger(keep) ? keep : 0) ? 1 : 0,
  );
}

/** What the grid shows and a generation sends: the marked cells, or the top rows' preview. */
function shownCells() {
  return keepBy() === 'cells' && marked ? marked : rowCells();
}

function gridCells() {
  return $('cells').querySelectorAll('[role="gridcell"]');
}

function drawCells() {
  const cells = shownCells();
  for (const [index, cell] of gridCells().entries()) {
    cell.setAttribute('aria-selected', String(cells[index] === 1));
  }
}

/** Rows of `cols` elements made by `cell(row, col)`, for the grid and the result's figure. */
function rowsOf([rows, cols], role, cell) {
  return Array.from({ length: rows }, (_, r) => {
    const row = document.createElement('div');
    row.className = 'cells-row';
    if (role) row.setAttribute('role', role);
    row.append(...Array.from({ length: cols }, (_, c) => cell(r, c)));
    return row;
  });
}

/** The grid's cells for the selected model's grid, when it changed; then what they show. */
function buildGrid() {
  const next = modelGrid();
  if (next[0] !== grid[0] || next[1] !== grid[1]) {
    grid = next;
    marked = null;
    $('cells').replaceChildren(
      ...rowsOf(grid, 'row', (r, c) => {
        const cell = document.createElement('div');
        cell.setAttribute('role', 'gridcell');
        cell.setAttribute('aria-label', `row ${r + 1}, column ${c + 1}`);
        // One tab stop for the grid; the arrow keys move between its cells.
        cell.tabIndex = r === 0 && c === 0 ? 0 : -1;
        return cell;
      }),
    );
  }
  drawCells();
}

/** Marks (1) or unmarks (0) a cell: from then on the grid's marks say what is kept. */
function mark(index, value) {
  if (keepBy() !== 'cells' || !marked) marked = Uint8Array.from(shownCells());
  setKeepBy('cells');
  marked[index] = value;
  drawCells();
  // Takes away a field error about the marks (problems.js listens for input).
  $('cells').dispatchEvent(new Event('input'));
}

function focusCell(index) {
  const cells = gridCells();
  for (const cell of cells) cell.tabIndex = -1;
  cells[index].tabIndex = 0;
  cells[index].focus();
}

/** The cell under a pointer, or undefined outside the grid. */
function cellAt(event) {
  const box = $('cells').getBoundingClientRect();
  const x = (event.clientX - box.left) / box.width;
  const y = (event.clientY - box.top) / box.height;
  if (!(x >= 0 && x < 1 && y >= 0 && y < 1)) return undefined;
  const [rows, cols] = grid;
  return Math.floor(y * rows) * cols + Math.floor(x * cols);
}

function pointerDown(event) {
  if (event.button !== 0) return;
  const index = cellAt(event);
  if (index === undefined) return;
  event.preventDefault();
  // The first cell decides: a drag that starts on a marked cell unmarks the cells it crosses.
  drag = { value: shownCells()[index] === 1 ? 0 : 1, index };
  mark(index, drag.value);
  focusCell(index);
  $('cells').setPointerCapture(event.pointerId);
}

function pointerMove(event) {
  if (!drag) return;
  const index = cellAt(event);
  if (index === undefined || index === drag.index) return;
  drag.index = index;
  mark(index, drag.value);
}

const MOVES = {
  ArrowLeft: (index, cols) => (index % cols > 0 ? index - 1 : index),
  ArrowRight: (index, cols) => (index % cols < cols - 1 ? index + 1 : index),
  ArrowUp: (index, cols) => (index >= cols ? index - cols : index),
  ArrowDown: (index, cols, count) => (index + cols < count ? index + cols : index),
  Home: (index, cols) => index - (index % cols),
  End: (index, cols) => index - (index % cols) + cols - 1,
};

function keyDown(event) {
  const cells = [...gridCells()];
  const index = cells.indexOf(event.target);
  if (index < 0) return;
  if (event.key === ' ' || event.key === 'Enter') {
    event.preventDefault();
    mark(index, shownCells()[index] === 1 ? 0 : 1);
  } else if (Object.hasOwn(MOVES, event.key)) {
    event.preventDefault();
    focusCell(MOVES[event.key](index, grid[1], cells.length));
  }
}

function forgetSource() {
  if (source) URL.revokeObjectURL(source.url);
  source = undefined;
  $('source').hidden = true;
  $('cells').style.backgroundImage = '';
}

/** The size this browser decodes the image at; 0 × 0 when it cannot (the service may still). */
async function sizeOf(blob) {
  try {
    const bitmap = await createImageBitmap(blob);
    const size = { width: bitmap.width, height: bitmap.height };
    bitmap.close();
    return size;
  } catch {
    return { width: 0, height: 0 };
  }
}

/** Makes `blob` the image to complete; `description` says which it is. */
export async function chooseImage(blob, name, description) {
  const token = ++choosing;
  const size = await sizeOf(blob);
  if (token !== choosing) return;
  forgetSource();
  source = { blob, name, url: URL.createObjectURL(blob), ...size };
  $('source-name').textContent = `Completing ${description}`;
  const shown = size.width > 0;
  // Without a size no mask can be drawn: only the top rows can be kept.
  if (!shown) setKeepBy('rows');
  for (const input of document.querySelectorAll('input[name="keep-by"][value="cells"], #cells-clear')) {
    input.disabled = !shown;
  }
  $('cells-field').hidden = !shown;
  if (shown) {
    $('cells').style.backgroundImage = `url("${source.url}")`;
    $('cells').style.aspectRatio = `${size.width} / ${size.height}`;
  }
  buildGrid();
  $('source').hidden = false;
}

/** "Complete this" under a generated image: it becomes the image to complete, and the grid takes the focus. */
export async function completeGenerated(blob, name, description) {
  $('image').value = '';
  await chooseImage(blob, name, description);
  $('completion').open = true;
  const focused = $('cells').querySelector('[tabindex="0"]');
  if (focused && !$('cells-field').hidden) focused.focus();
  else $('keep-rows').focus();
  $('completion').scrollIntoView({ block: 'start' });
}

/**
 * The mask: `width` × `height` pixels, alpha 0 in the cells drawn anew and 255 elsewhere. Each
 * pixel falls in the cell the service maps it to (src/api/completion.ts), so the cells it reads
 * back are the cells marked, whatever the image's size.
 */
function maskOf(cells, [rows, cols], { width, height }) {
  const canvas = document.createElement('canvas');
  canvas.width = width;
  canvas.height = height;
  const context = canvas.getContext('2d');
  const pixels = context.createImageData(width, height);
  for (let y = 0; y < height; y++) {
    const row = Math.floor((y * rows) / height) * cols;
    for (let x = 0; x < width; x++) {
      if (cells[row + Math.floor((x * cols) / width)] === 0) pixels.data[(y * width + x) * 4 + 3] = 255;
    }
  }
  context.putImageData(pixels, 0, 0);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error('could not draw the mask'))), 'image/png'),
  );
}

/**
 * The multipart parts of a completion, `[field, value, filename?]`: the image, `keep_rows` or
 * `mask`, and `rank_by` when CLIP is to rank by likeness to the image; none without an image.
 * Marks that keep every cell are refused here, as a field error.
 */
export async function completionParts() {
  if (!source) return [];
  const parts = [['image', source.blob, source.name]];
  if ($('rank-by-image').checked) parts.push(['rank_by', 'image']);
  if (keepBy() === 'rows') return [...parts, ['keep_rows', $('keep-rows').value.trim()]];
  const cells = shownCells();
  if (!cells.includes(1)) {
    throw new ProblemError(400, { errors: [{ field: 'mask', message: 'has no cell marked to draw anew' }] });
  }
  return [...parts, ['mask', await maskOf(cells, grid, source), 'mask.png']];
}

export function clearKept() {
  $('kept').hidden = true;
  $('kept-cells').replaceChildren();
  if (keptUrl) URL.revokeObjectURL(keptUrl);
  keptUrl = undefined;
}

/**
 * After a completion: the image it was given, under its grid with the kept cells clear and the
 * others hatched, from the generation's `completion.kept` (`#` kept, `.` drawn anew).
 */
export function showKept(completion, image) {
  clearKept();
  if (!completion) return;
  const { kept, kept_cells: count, grid: size } = completion;
  $('kept-cells').replaceChildren(
    ...rowsOf(size, undefined, (r, c) => {
      const cell = document.createElement('span');
      cell.className = kept[r][c] === '#' ? 'cell' : 'cell drawn';
      return cell;
    }),
  );
  if (image?.width > 0) {
    keptUrl = URL.createObjectURL(image.blob);
    $('kept-cells').style.backgroundImage = `url("${keptUrl}")`;
    $('kept-cells').style.aspectRatio = `${image.width} / ${image.height}`;
  }
  $('kept-caption').textContent =
    `${count} of ${size[0] * size[1]} cells kept from the image; the hatched ones drawn anew`;
  $('kept').hidden = false;
}

/** The image a generation is sent with, for its result's figure. */
export function currentSource() {
  return source;
}

/** After the models load or change: the grid of the model now selected. */
export function refreshGrid() {
  if (source) buildGrid();
}

export function watchCompletionInputs() {
  $('image').addEventListener('change', () => {
    const file = $('image').files?.[0];
    if (file) void chooseImage(file, file.name, file.name);
    else {
      choosing++;
      forgetSource();
    }
  });
  $('source-clear').addEventListener('click', () => {
    choosing++;
    $('image').value = '';
    forgetSource();
    $('image').focus();
  });
  $('keep-rows').addEventListener('input', () => {
    setKeepBy('rows');
    drawCells();
  });
  $('keep-by').addEventListener('change', () => {
    if (keepBy() === 'cells' && !marked) marked = rowCells();
    drawCells();
  });
  $('cells-clear').addEventListener('click', () => {
    marked = new Uint8Array(grid[0] * grid[1]);
    setKeepBy('cells');
    drawCells();
  });
  $('model').addEventListener('change', refreshGrid);
  const cells = $('cells');
  cells.addEventListener('pointerdown', pointerDown);
  cells.addEventListener('pointermove', pointerMove);
  for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
    cells.addEventListener(type, () => (drag = undefined));
  }
  cells.addEventListener('keydown', keyDown);
}
