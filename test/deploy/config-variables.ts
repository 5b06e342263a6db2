// Every variable src/config.ts reads, found by handing loadConfig an environment that records
// reads: what the deployment files may set.
import { loadConfig } from '../../src/config.js';

export function configVariables(): Set<string> {
  const names = new Set<string>();
  for (const storage of ['fs', 's3']) {
    const env = new Proxy({} as Record<string, string | undefined>, {
      get(_target, name) {
        if (typeof name !== 'string') return undefined;
        names.add(name);
        return name === 'STORAGE' ? storage : undefined;
      },
    });
    try {
      loadConfig(env);
    } catch {
      // s3 without S3_BUCKET is invalid; every variable was read all the same.
    }
  }
  return names;
}
