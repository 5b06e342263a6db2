#!/usr/bin/env node
// `dalle-serve …` (`npx dalle-serve` in the repository, `npm run client --`): the client CLI,
// src/client/cli.ts, run through tsx like the rest of the repository.
import { register } from 'tsx/esm/api';

register();
await import('../src/client/cli.ts');
