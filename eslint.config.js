// ESLint: the recommended sets, plus type-aware promise rules on src/ (a promise nobody awaits
// or catches, or one passed where a callback's result is ignored, loses its error).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'openapi/',
      'packs/',
      'training/',
      'data/',
      'var/',
      '.gpu-bundle/',
      '.cuda-kit/',
      '.cuda-kit-parts/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      // `{ secret: _secret, ...rest }` is how an object is copied without one field.
      '@typescript-eslint/no-unused-vars': ['error', { ignoreRestSiblings: true }],
      // Validators and tokenizer checks match control characters on purpose.
      'no-control-regex': 'off',
      // Every dropped error says why: log it, or disable this on the line with a reason.
      'no-restricted-syntax': [
        'error',
        {
          selector:
            "CallExpression[callee.property.name='catch'] > ArrowFunctionExpression > BlockStatement[body.length=0]",
          message: 'An error dropped without a word: log it, or say why it may be dropped.',
        },
      ],
    },
  },
  {
    // The playground's modules run in the browser.
    files: ['public/**/*.js'],
    languageOptions: {
      globals: Object.fromEntries(
        [
          'document',
          'location',
          'sessionStorage',
          'fetch',
          'FormData',
          'Option',
          'URL',
          'setTimeout',
          'clearTimeout',
          'Event',
          'TextDecoderStream',
          'createImageBitmap',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    // The scripts in plain JavaScript run in Node.
    files: ['scripts/**/*.mjs'],
    languageOptions: {
      globals: Object.fromEntries(['console', 'process', 'URL'].map((name) => [name, 'readonly'])),
    },
  },
  {
    // Tests and benchmarks read JSON bodies and library internals loosely.
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Where values come back from Redis and BullMQ, a type is checked, not asserted: a cast
    // needs a line saying why it holds.
    files: ['src/service/**/*.ts', 'src/worker/**/*.ts', 'src/webhooks/**/*.ts'],
    rules: { '@typescript-eslint/consistent-type-assertions': ['error', { assertionStyle: 'never' }] },
  },
  {
    files: ['src/**/*.ts'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
    },
  },
);
