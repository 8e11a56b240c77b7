// Builds the playground into the Python package (graph/playground_dist), served at
// /playground by graph/playground.py. The build also writes stamp.json: a sha256 of
// the sources below, which tests/test_playground.py recomputes to catch a stale build.
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));
const outDir = join(root, '..', 'graph', 'playground_dist');
// The live panel uses the SDK's sources (clients/js/src), built in with the page.
const SDK_SOURCES = join(root, '..', 'clients', 'js', 'src');
const SOURCES = ['index.html', 'package.json', 'package-lock.json', 'vite.config.js', 'src', '../clients/js/src'];

function files(path) {
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path).flatMap((name) => files(join(path, name)));
}

// Keep in step with sources_digest() in tests/test_playground.py.
function sourcesDigest() {
  const paths = SOURCES.flatMap((name) => files(join(root, name)))
    .map((path) => relative(root, path).split(sep).join('/'))
    .sort();
  const whole = createHash('sha256');
  for (const path of paths) {
    const digest = createHash('sha256').update(readFileSync(join(root, path))).digest('hex');
    whole.update(`${path}\0${digest}\n`);
  }
  return { sha256: whole.digest('hex'), files: paths };
}

const stamp = {
  name: 'forgegraph-stamp',
  apply: 'build',
  closeBundle() {
    writeFileSync(join(outDir, 'stamp.json'), `${JSON.stringify(sourcesDigest(), null, 2)}\n`);
  },
};

export default defineConfig({
  // Absolute, so the page works at /playground as well as /playground/.
  base: '/playground/',
  plugins: [react(), stamp],
  resolve: {
    alias: { forgegraph: join(SDK_SOURCES, 'index.ts') },
    // The SDK's own imports (graphql-ws/client) resolve to this package's node_modules.
    dedupe: ['graphql-ws'],
  },
  worker: { format: 'es' },
  // `npm run dev`: the page at http://localhost:5173/playground/ talks to a
  // `forgegraph serve` on the default port.
  server: { proxy: { '/graphql': { target: 'http://127.0.0.1:8000', ws: true } } },
  build: {
    outDir,
    emptyOutDir: true,
    chunkSizeWarningLimit: 8000,
  },
});
