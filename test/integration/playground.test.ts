// The playground in a real browser (Debian's chromium, headless, driven by playwright-core):
// generate with progress from the event stream, see decoded images, classify one; complete an
// upload or a generated image, its top rows or the cells painted on the grid kept; at 375 px;
// with the keyboard alone; Candidates from the model's default; Cancel; the prompt's unknown
// words; errors next to their inputs, in words, with no earlier result left showing; and with
// keys required. One browser for the file. A failing test prints the page's console and leaves
// a screenshot in var/screenshots/.
// `npm run screenshots` runs the first test with PLAYGROUND_SCREENSHOT set to write docs/playground.png.
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type Browser, type Page, chromium } from 'playwright-core';
import sharp from 'sharp';
import { GenerationList, ModelList } from '../../src/contracts/schemas.js';
import { type Harness, closeSharedEngine, json, startHarness } from './api-harness.js';

const FAILURE_DIR = 'var/screenshots';
const WAIT_MS = 120_000;

let browser: Browser;

async function withPage(
  name: string,
  baseUrl: string,
  viewport: { width: number; height: number },
  run: (page: Page) => Promise<void>,
): Promise<void> {
  const context = await browser.newContext({ viewport, baseURL: baseUrl });
  const page = await context.newPage();
  const consoleLines: string[] = [];
  page.on('console', (message) => consoleLines.push(`[${message.type()}] ${message.text()}`));
  page.on('pageerror', (error) => consoleLines.push(`[pageerror] ${error.message}`));
  try {
    await run(page);
  } catch (error) {
    await mkdir(FAILURE_DIR, { recursive: true });
    const path = `${FAILURE_DIR}/${name.replace(/\W+/g, '-')}.png`;
    // eslint-disable-next-line no-restricted-syntax -- a page too broken to screenshot still reports the failure below
    await page.screenshot({ path, fullPage: true }).catch(() => {});
    process.stderr.write(`\n--- page console (${name}) ---\n${consoleLines.join('\n')}\n--- screenshot: ${path}\n`);
    throw error;
  } finally {
    await context.close();
  }
}

// Functions run in the page (the page's CSP refuses evaluated strings); this file is typed for
// Node, so they reach the DOM through `globalThis`.

/** Records each value the progress bar shows, and whether the grid had images yet; and each label. */
async function watchProgress(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = globalThis as any;
    w.progressLog = [];
    w.labelLog = [];
    const bar = w.document.getElementById('progress');
    new w.MutationObserver(() =>
      w.progressLog.push({
        value: Number(bar.getAttribute('value')),
        gridShown: w.document.querySelectorAll('#grid img').length > 0,
      }),
    ).observe(bar, { attributes: true, attributeFilter: ['value'] });
    const label = w.document.getElementById('progress-label');
    new w.MutationObserver(() => w.labelLog.push(label.textContent)).observe(label, {
      childList: true,
      characterData: true,
      subtree: true,
    });
  });
}

async function labelsShown(page: Page): Promise<string[]> {
  return page.evaluate(() => (globalThis as any).labelLog);
}

/** The values strictly between empty and full that the bar showed before the grid appeared. */
async function progressValuesBeforeGrid(page: Page): Promise<number[]> {
  const log: { value: number; gridShown: boolean }[] = await page.evaluate(() => (globalThis as any).progressLog);
  const shown = log.filter((entry) => !entry.gridShown && entry.value > 0 && entry.value < 1);
  return [...new Set(shown.map((entry) => entry.value))];
}

async function decodedImages(page: Page, count: number): Promise<void> {
  await page.waitForFunction(
    (n) => {
      const images: any[] = [...(globalThis as any).document.querySelectorAll('#grid img')];
      return images.length === n && images.every((image) => image.complete && image.naturalWidth > 0);
    },
    count,
    { timeout: WAIT_MS },
  );
  const alts = await page.locator('#grid img').evaluateAll((images) => images.map((i) => i.getAttribute('alt')));
  assert.ok(
    alts.every((alt) => alt && alt.length > 10),
    alts.join(),
  );
  const captions = await page.locator('#grid figcaption').allTextContents();
  assert.ok(
    captions.every((caption) => /CLIP -?\d+\.\d{3}/.test(caption) && /seed \d+/.test(caption)),
    captions.join(),
  );
}

/** The field error shown for `inputId`: beside it, named by its aria-describedby, with aria-invalid set. */
async function fieldError(page: Page, inputId: string): Promise<string> {
  const note = page.locator(`#${inputId}-error`);
  await note.waitFor({ timeout: WAIT_MS });
  const input = page.locator(`#${inputId}`);
  assert.equal(await input.getAttribute('aria-invalid'), 'true');
  assert.ok((await input.getAttribute('aria-describedby'))?.split(' ').includes(`${inputId}-error`));
  assert.equal(await note.getAttribute('role'), 'alert');
  const besideInput = await note.evaluate(
    (element, id) => element.closest('.field')?.querySelector(`#${id}`) !== null,
    inputId,
  );
  assert.ok(besideInput, `the error for #${inputId} sits in its field`);
  const text = (await note.textContent()) ?? '';
  assert.doesNotMatch(text, /[{}[\]"\\^$]|>=|<=|pattern|NOT/, `no JSON, regex or validator phrasing: ${text}`);
  return text;
}

/** Whether the page shows nothing of an earlier run: no bar, results, unknown words or scores. */
async function nothingOfAnEarlierRun(page: Page): Promise<void> {
  for (const id of ['progress-section', 'results', 'unknown-words', 'classify', 'cancel']) {
    assert.ok(await page.locator(`#${id}`).isHidden(), `#${id} is hidden`);
  }
  assert.equal(await page.locator('#grid li').count(), 0);
  assert.equal(await page.locator('#scores li').count(), 0);
}

async function scores(page: Page): Promise<string[]> {
  await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('#scores li').length >= 2, null, {
    timeout: WAIT_MS,
  });
  return page.locator('#scores li').allTextContents();
}

/** Presses Tab until the (first) element matching `selector` has the focus. */
async function tabTo(page: Page, selector: string): Promise<void> {
  for (let i = 0; i < 40; i++) {
    if (
      await page
        .locator(selector)
        .first()
        .evaluate((element) => element.matches(':focus'))
    )
      return;
    await page.keyboard.press('Tab');
  }
  throw new Error(`Tab never reached ${selector}`);
}

/** The newest generation, as GET /generations lists it. */
async function newestGeneration(baseUrl: string) {
  const { data } = await json(await fetch(`${baseUrl}/generations?limit=1`), GenerationList);
  assert.ok(data[0], 'a generation');
  return data[0];
}

/**
 * Keeps each form the page hands to fetch for POST /generations. (The browser leaves a file's
 * bytes out of the request it reports, so the form is read where the page sends it.)
 */
async function recordForms(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = globalThis as any;
    const send = w.fetch;
    w.sentForms = [];
    w.fetch = (input: unknown, init?: { method?: string; body?: unknown }) => {
      if (init?.method === 'POST' && input === '/generations' && init.body instanceof w.FormData) {
        w.sentForms.push(init.body);
      }
      return send(input, init);
    };
  });
}

interface SentFile {
  name: string;
  bytes: Buffer;
}

/** The last form recorded: each text field's value, and each file's name and bytes. */
async function lastForm(page: Page): Promise<Record<string, string | SentFile>> {
  type Entry = [string, string | { name: string; base64: string }];
  const entries = await page.evaluate(async () => {
    const w = globalThis as any;
    const form = w.sentForms.at(-1);
    if (!form) throw new Error('no form was sent');
    // No named inner functions: the test's compiler would wrap them in a helper the page lacks.
    const entries: Entry[] = [];
    for (const [field, value] of form.entries()) {
      if (typeof value === 'string') {
        entries.push([field, value]);
        continue;
      }
      const bytes = new Uint8Array(await value.arrayBuffer());
      entries.push([
        field,
        { name: value.name, base64: w.btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join('')) },
      ]);
    }
    return entries;
  });
  return Object.fromEntries(
    entries.map(([field, value]) => [
      field,
      typeof value === 'string' ? value : { name: value.name, bytes: Buffer.from(value.base64, 'base64') },
    ]),
  );
}

/** The painting grid as the service writes `completion.kept`: `.` a cell marked to draw anew, `#` kept. */
async function paintedRows(page: Page): Promise<string[]> {
  return page
    .locator('#cells [role="row"]')
    .evaluateAll((rows) =>
      rows.map((row) =>
        [...row.querySelectorAll('[role="gridcell"]')]
          .map((cell) => (cell.getAttribute('aria-selected') === 'true' ? '.' : '#'))
          .join(''),
      ),
    );
}

/** The result's figure of the cells kept, read back the same way. */
async function keptRows(page: Page): Promise<string[]> {
  return page
    .locator('#kept-cells .cells-row')
    .evaluateAll((rows) =>
      rows.map((row) => [...row.children].map((cell) => (cell.classList.contains('drawn') ? '.' : '#')).join('')),
    );
}

before(async () => {
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
});
after(async () => {
  await browser.close();
  await closeSharedEngine();
});

describe('playground', () => {
  let h: Harness;

  before(async () => {
    // DEFAULT_CANDIDATES: neither the page's fallback (32) nor its old constant (256), so the
    // prefilled Candidates can only have come from GET /models.
    h = await startHarness({
      env: { PROGRESS_EVENT_INTERVAL_MS: '50', SAMPLE_BATCH: '16', DEFAULT_CANDIDATES: '24' },
    });
  });
  after(() => h.close());

  test('generate, watch the progress, see the ranked images, classify one', async () => {
    await withPage('generate', h.baseUrl, { width: 1100, height: 900 }, async (page) => {
      await page.goto('/');
      assert.equal(await page.locator('a[href="/docs"]').count(), 1);
      assert.ok(await page.locator('#key-field').isHidden(), 'no key field on an open server');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('model').value === 'demo-shapes');
      await page.fill('#prompt', 'a red circle above a blue square');
      await page.fill('#candidates', '256');
      await page.fill('#n', '8');
      await page.fill('#seed', '42');
      await watchProgress(page);
      await page.click('#generate');
      await decodedImages(page, 8);
      const values = await progressValuesBeforeGrid(page);
      assert.ok(values.length >= 2, `the bar moved before the grid: ${values.join()}`);
      // The stage and counts, with the time left once the workers have measured their rate;
      // never a placeholder for a field the answer left null.
      const labels = await labelsShown(page);
      assert.ok(
        labels.some((label) => /^sampling: \d+ \/ 256( — about \d+ s left)?$/.test(label)),
        labels.join(' | '),
      );
      assert.ok(
        labels.every((label) => !/undefined|null|NaN/.test(label)),
        labels.join(' | '),
      );
      assert.ok(await page.locator('#cancel').isHidden(), 'no Cancel once done');
      await page.click('#grid li:first-child button[aria-pressed]');
      assert.equal(await page.locator('#grid li:first-child button[aria-pressed="true"]').count(), 1);
      assert.equal(await page.locator('#grid button.complete').count(), 8, 'each image can be completed');
      assert.equal(
        await page.locator('#grid button.complete[aria-pressed]').count(),
        0,
        '“Complete this” is no toggle',
      );
      await page.fill('#labels', 'red circle, blue square, green triangle');
      await page.click('#classify-form button');
      const texts = await scores(page);
      assert.equal(texts.length, 3);
      assert.ok(
        texts.every((text) => /^(red circle|blue square|green triangle): \d+\.\d%$/.test(text)),
        texts.join(),
      );
      if (process.env.PLAYGROUND_SCREENSHOT) {
        await page.screenshot({ path: process.env.PLAYGROUND_SCREENSHOT, fullPage: true });
      }
    });
  });

  test('complete an uploaded image: its top rows kept, the rest drawn, a bad row count named beside its field', async () => {
    await withPage('complete', h.baseUrl, { width: 1100, height: 900 }, async (page) => {
      await page.goto('/');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('model').value === 'demo-shapes');
      await page.fill('#prompt', 'a blue circle above a red square');
      await page.fill('#candidates', '8');
      await page.fill('#n', '4');
      await page.click('#completion summary');
      await page.setInputFiles('#image', fileURLToPath(new URL('../fixtures/scenes/heldout-01.png', import.meta.url)));
      await page.fill('#keep-rows', '8');
      await page.click('#generate');
      assert.match(await fieldError(page, 'keep-rows'), /Keep top rows must be below the grid's 8 rows/);
      await page.fill('#keep-rows', '4');
      await page.click('#generate');
      await decodedImages(page, 4);
      assert.match(
        (await page.locator('#progress-label').textContent()) ?? '',
        /^Done: 4 of 8 candidates kept; 32 of 64 cells kept from the image$/,
      );
    });
  });

  test('complete a generated image: “Complete this” uploads its bytes, its top rows kept and shown', async () => {
    await withPage('complete-generated', h.baseUrl, { width: 1100, height: 900 }, async (page) => {
      await page.goto('/');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('model').value === 'demo-shapes');
      await page.fill('#prompt', 'a red circle above a blue square');
      await page.fill('#candidates', '8');
      await page.fill('#n', '2');
      await page.fill('#seed', '11');
      await page.click('#generate');
      await decodedImages(page, 2);
      const picked = await newestGeneration(h.baseUrl);
      const second = picked.images[1];
      const bytes = Buffer.from(await (await fetch(second.url)).arrayBuffer());

      // With the keyboard: the action is a button, and the focus lands on the grid to paint.
      await page.focus('#grid li:nth-child(2) button.complete');
      await page.keyboard.press('Enter');
      await page.locator('#source').waitFor({ state: 'visible', timeout: WAIT_MS });
      assert.equal(
        await page.locator('#source-name').textContent(),
        'Completing candidate ranked 2 for “a red circle above a blue square”',
      );
      assert.equal(
        await page.evaluate(() => (globalThis as any).document.activeElement?.getAttribute('role')),
        'gridcell',
      );
      assert.equal(await page.locator('#image').evaluate((input: any) => input.files.length), 0, 'no upload chosen');
      assert.equal(await page.locator('#cells [role="gridcell"]').count(), 64, "the demo pack's 8 × 8 grid");
      // Keep top rows repaints the grid's preview.
      await page.fill('#keep-rows', '3');
      const expected = [...Array(3).fill('########'), ...Array(5).fill('........')];
      assert.deepEqual(await paintedRows(page), expected);

      await page.fill('#prompt', 'a green triangle');
      await recordForms(page);
      await page.click('#generate');
      await decodedImages(page, 2);
      const { image, keep_rows: keepRows, mask, rank_by: rankBy } = await lastForm(page);
      assert.equal(keepRows, '3');
      assert.equal(rankBy, undefined, 'ranked by the prompt unless asked');
      assert.equal(mask, undefined);
      assert.ok(typeof image === 'object');
      assert.equal(image.name, 'candidate-2.png');
      assert.ok(image.bytes.equals(bytes), "the candidate's own bytes");

      const done = await newestGeneration(h.baseUrl);
      assert.notEqual(done.id, picked.id);
      assert.equal(done.status, 'succeeded');
      assert.deepEqual(done.input.completion, {
        grid: [8, 8],
        image_size: [64, 64],
        keep_rows: 3,
        kept_cells: 24,
        kept: expected,
      });
      assert.match(
        (await page.locator('#progress-label').textContent()) ?? '',
        /; 24 of 64 cells kept from the image$/,
      );
      assert.deepEqual(await keptRows(page), expected, 'the figure shows the kept cells');
      assert.equal(
        await page.locator('#kept-caption').textContent(),
        '24 of 64 cells kept from the image; the hatched ones drawn anew',
      );
    });
  });

  test('paint the cells to draw anew: the mask keeps exactly the others, at the image’s own size', async () => {
    // 100 × 60 px: cells of 12.5 × 7.5 px, so the mask's pixels must fall in the cells the service maps them to.
    const dir = await mkdtemp(join(tmpdir(), 'playground-'));
    const file = join(dir, 'scene-100x60.png');
    await sharp(fileURLToPath(new URL('../fixtures/scenes/heldout-01.png', import.meta.url)))
      .resize(100, 60, { fit: 'fill' })
      .png()
      .toFile(file);
    try {
      await withPage('complete-mask', h.baseUrl, { width: 1100, height: 900 }, async (page) => {
        await page.goto('/');
        await page.waitForFunction(() => (globalThis as any).document.getElementById('model').value === 'demo-shapes');
        await page.fill('#prompt', 'a blue circle above a red square');
        await page.fill('#candidates', '8');
        await page.fill('#n', '2');
        await page.click('#completion summary');
        await page.setInputFiles('#image', file);
        await page.locator('#cells-field').waitFor({ state: 'visible', timeout: WAIT_MS });
        assert.equal(await page.locator('#source-name').textContent(), 'Completing scene-100x60.png');
        // Until a cell is marked, the grid previews Keep top rows (4).
        assert.deepEqual(await paintedRows(page), [...Array(4).fill('########'), ...Array(4).fill('........')]);
        await page.click('#cells-clear');
        assert.ok(await page.locator('input[name="keep-by"][value="cells"]').isChecked());
        assert.deepEqual(await paintedRows(page), Array(8).fill('########'));
        await page.click('#generate');
        assert.equal(await fieldError(page, 'cells'), 'The mask has no cell marked to draw anew');

        const cell = (row: number, col: number) => page.locator('#cells [role="gridcell"]').nth(row * 8 + col);
        await cell(1, 2).click();
        assert.equal(await page.locator('#cells-error').count(), 0, 'marking takes the error away');
        // A drag along row 5 marks the cells it crosses.
        const from = await cell(5, 0).boundingBox();
        const to = await cell(5, 3).boundingBox();
        assert.ok(from && to);
        await page.mouse.move(from.x + from.width / 2, from.y + from.height / 2);
        await page.mouse.down();
        await page.mouse.move(to.x + to.width / 2, to.y + to.height / 2, { steps: 8 });
        await page.mouse.up();
        // The keyboard: from the cell pressed last, (5, 0), two up and three right, Space marks (3, 3).
        for (const key of ['ArrowUp', 'ArrowUp', 'ArrowRight', 'ArrowRight', 'ArrowRight', 'Space']) {
          await page.keyboard.press(key);
        }
        // Pressing a marked cell unmarks it.
        await cell(5, 3).click();
        const expected = [
          '########',
          '##.#####',
          '########',
          '###.####',
          '########',
          '...#####',
          '########',
          '########',
        ];
        assert.deepEqual(await paintedRows(page), expected);

        await page.check('#rank-by-image');
        await recordForms(page);
        await page.click('#generate');
        await decodedImages(page, 2);
        const { keep_rows: keepRows, mask, rank_by: rankBy } = await lastForm(page);
        assert.equal(keepRows, undefined);
        assert.equal(rankBy, 'image');
        assert.ok(typeof mask === 'object');
        // Alpha 0 exactly in the marked cells, 255 elsewhere, pixel by pixel as the service reads it.
        const { data, info } = await sharp(mask.bytes).ensureAlpha().raw().toBuffer({ resolveWithObject: true });
        assert.deepEqual([info.width, info.height], [100, 60]);
        const wrong: string[] = [];
        for (let y = 0; y < 60; y++) {
          for (let x = 0; x < 100; x++) {
            const drawn = expected[Math.floor((y * 8) / 60)][Math.floor((x * 8) / 100)] === '.';
            const alpha = data[(y * 100 + x) * info.channels + info.channels - 1];
            if (alpha !== (drawn ? 0 : 255)) wrong.push(`(${x}, ${y}): ${alpha}`);
          }
        }
        assert.deepEqual(wrong.slice(0, 5), []);
        const done = await newestGeneration(h.baseUrl);
        assert.equal(done.status, 'succeeded');
        assert.equal(done.input.completion?.keep_rows, null);
        assert.deepEqual(done.input.completion?.kept, expected);
        assert.equal(done.input.completion?.kept_cells, 59);
        assert.equal(done.input.rank_by, 'image', 'ranked by likeness to the image');
        assert.match(
          (await page.locator('#progress-label').textContent()) ?? '',
          /; 59 of 64 cells kept from the image$/,
        );
        assert.deepEqual(await keptRows(page), expected);
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test('at 375 px nothing scrolls sideways', async () => {
    await withPage('narrow', h.baseUrl, { width: 375, height: 800 }, async (page) => {
      await page.goto('/');
      // An unknown word, for the notice about it to be measured too.
      await page.fill('#prompt', 'a red circle on a sofa');
      await page.fill('#candidates', '64');
      await page.fill('#n', '4');
      await page.click('#generate');
      await decodedImages(page, 4);
      assert.ok(await page.locator('#unknown-words').isVisible());
      await page.click('#grid li:first-child button[aria-pressed]');
      await page.click('#classify-form button');
      await scores(page);
      // The image to complete, under its grid, fits too.
      await page.click('#grid li:first-child button.complete');
      await page.locator('#cells-field').waitFor({ state: 'visible', timeout: WAIT_MS });
      const width: number = await page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth);
      assert.ok(width <= 375, `page is ${width} px wide`);
    });
  });

  test('the whole flow with the keyboard alone', async () => {
    await withPage('keyboard', h.baseUrl, { width: 1000, height: 900 }, async (page) => {
      await page.goto('/');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('model').options.length > 0);
      await tabTo(page, '#prompt');
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type('a green triangle');
      await tabTo(page, '#candidates');
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type('32');
      await tabTo(page, '#n');
      await page.keyboard.press('ControlOrMeta+A');
      await page.keyboard.type('3');
      await tabTo(page, '#generate');
      await page.keyboard.press('Enter');
      await decodedImages(page, 3);
      await tabTo(page, '#grid button');
      await page.keyboard.press('Enter');
      const focused = await page.evaluate(() => (globalThis as any).document.activeElement?.id);
      assert.equal(focused, 'labels', 'focus moves to the labels');
      await page.keyboard.press('Enter');
      await scores(page);
    });
  });

  test('Candidates start at the default model’s default_candidates', async () => {
    const { data } = await json(await fetch(`${h.baseUrl}/models`), ModelList);
    const model = data.find((m) => m.default_for.includes('generations'));
    assert.equal(model?.generation?.default_candidates, 24);
    await withPage('candidates', h.baseUrl, { width: 1000, height: 900 }, async (page) => {
      await page.goto('/');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('candidates').value === '24', null, {
        timeout: WAIT_MS,
      });
      // A number the user typed stays when the model changes.
      await page.fill('#candidates', '40');
      await page.selectOption('#model', 'micro-dalle1');
      await page.selectOption('#model', 'demo-shapes');
      assert.equal(await page.inputValue('#candidates'), '40');
    });
  });

  test('Cancel while the generation runs ends in Canceled', async () => {
    await withPage('cancel', h.baseUrl, { width: 1000, height: 900 }, async (page) => {
      await page.goto('/');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('model').value === 'demo-shapes');
      assert.ok(await page.locator('#cancel').isHidden(), 'no Cancel before a generation');
      // Far more candidates than the worker samples before the click (it stops at its next chunk).
      await page.fill('#candidates', '2048');
      await page.fill('#n', '4');
      await page.click('#generate');
      await page.locator('#cancel').waitFor({ state: 'visible', timeout: WAIT_MS });
      assert.equal(await page.locator('#cancel').evaluate((element) => element.tagName), 'BUTTON');
      await page.click('#cancel');
      await page
        .locator('#progress-label')
        .filter({ hasText: /^Canceled$/ })
        .waitFor({ timeout: WAIT_MS });
      assert.ok(await page.locator('#cancel').isHidden(), 'no Cancel once canceled');
      assert.ok(await page.locator('#results').isHidden());
      assert.ok(await page.locator('#error').isHidden());
      assert.equal(await page.locator('#status').textContent(), 'Canceled');
      assert.ok(await page.locator('#generate').isEnabled());
      const { data } = await json(await fetch(`${h.baseUrl}/generations?limit=1`), GenerationList);
      assert.equal(data[0]?.status, 'canceled');
      assert.ok((data[0]?.progress?.completed ?? 0) < 2048, 'stopped before the end');
    });
  });

  test('the prompt’s unknown words: warned while typing, named after the generation', async () => {
    await withPage('unknown-words', h.baseUrl, { width: 1000, height: 900 }, async (page) => {
      await page.goto('/');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('model').value === 'demo-shapes');
      assert.ok(await page.locator('#prompt-words').isHidden(), 'the default prompt has no unknown words');
      await page.fill('#prompt', 'a photo of a cat on a sofa');
      assert.equal(await page.locator('#prompt-words').textContent(), 'demo-shapes never learned: cat, sofa');
      assert.equal(await page.getAttribute('#prompt', 'aria-describedby'), 'prompt-words');
      await page.fill('#candidates', '8');
      await page.fill('#n', '2');
      await page.click('#generate');
      await decodedImages(page, 2);
      const notice = page.locator('#unknown-words');
      assert.ok(await notice.isVisible());
      const text = (await notice.textContent()) ?? '';
      assert.match(text, /demo-shapes never learned: cat, sofa\./);
      assert.match(text, /It knows: a, above, .*photo.*\./);
      assert.match(text, /Try one of its examples:/);
      assert.equal(await notice.locator('li button').count(), 3);
      // An example replaces the prompt, and the warning goes with the unknown words.
      const example = (await notice.locator('li button').first().textContent()) ?? '';
      await notice.locator('li button').first().click();
      assert.equal(await page.inputValue('#prompt'), example);
      assert.ok(await page.locator('#prompt-words').isHidden());
      assert.equal(await page.getAttribute('#prompt', 'aria-describedby'), null);
    });
  });

  test('errors next to their inputs, in words, with nothing of the earlier run left', async () => {
    await withPage('field-errors', h.baseUrl, { width: 1000, height: 900 }, async (page) => {
      await page.goto('/');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('model').value === 'demo-shapes');
      await page.fill('#candidates', '8');
      await page.fill('#n', '2');
      await page.click('#generate');
      await decodedImages(page, 2);
      // One label: the labels input says why.
      await page.click('#grid li:first-child button[aria-pressed]');
      await page.fill('#labels', 'red circle');
      await page.click('#classify-form button');
      assert.match(await fieldError(page, 'labels'), /^The labels must have at least 2 items/);
      assert.ok(await page.locator('#error').isHidden(), 'a field error is not repeated in the alert box');
      // A run that fails leaves nothing of the one before.
      await page.fill('#candidates', '0');
      await page.click('#generate');
      assert.equal(await fieldError(page, 'candidates'), 'Candidates must be at least 1');
      await nothingOfAnEarlierRun(page);
      assert.ok(await page.locator('#error').isHidden());
      // Editing the field takes its error away; the next refusal names it again.
      await page.fill('#candidates', '99999');
      assert.equal(await page.locator('#candidates-error').count(), 0);
      assert.equal(await page.getAttribute('#candidates', 'aria-invalid'), null);
      await page.click('#generate');
      assert.equal(await fieldError(page, 'candidates'), 'Candidates must be at most 4096');
      await page.fill('#candidates', '8');
      await page.fill('#prompt', '   ');
      await page.click('#generate');
      assert.equal(await fieldError(page, 'prompt'), 'The prompt must not be empty');
      assert.equal(await page.locator('[aria-invalid="true"]').count(), 1, 'only the prompt is marked');
      await nothingOfAnEarlierRun(page);
    });
  });
});

describe('playground with API keys required', () => {
  let h: Harness;

  before(async () => {
    h = await startHarness({ worker: false, env: { API_KEYS: 'alice:alice-key-0123456789abcdef' } });
  });
  after(() => h.close());

  test('shows the key field, and the 401 problem’s detail for a wrong key', async () => {
    await withPage('keys', h.baseUrl, { width: 1000, height: 800 }, async (page) => {
      await page.goto('/');
      await page.locator('#key-field').waitFor({ state: 'visible' });
      await page.fill('#api-key', 'not-the-key-0123456789');
      await page.press('#api-key', 'Tab');
      await page.click('#generate');
      await page.locator('#error').filter({ hasText: 'not valid' }).waitFor({ timeout: WAIT_MS });
      assert.equal(await page.locator('#error').textContent(), 'the API key is not valid or has been revoked');
      // The right key lists the models, and is kept for the tab only.
      await page.fill('#api-key', 'alice-key-0123456789abcdef');
      await page.press('#api-key', 'Tab');
      await page.waitForFunction(() => (globalThis as any).document.getElementById('error').hidden === true);
      assert.equal(await page.evaluate("sessionStorage.getItem('dalle-serve.api-key')"), 'alice-key-0123456789abcdef');
    });
  });
});
