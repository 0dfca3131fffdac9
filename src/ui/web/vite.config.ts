// Builds the page of `stack ui` into dist/ui/web/app.js and app.css (`npm run build`): bundled,
// minified, nothing fetched at run time (the server inlines both into the page).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root: here,
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../../../dist/ui/web/', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: false,
    cssCodeSplit: false,
    modulePreload: false,
    rolldownOptions: {
      input: `${here}entry.ts`,
      output: { entryFileNames: 'app.js', assetFileNames: 'app[extname]' },
    },
  },
});
