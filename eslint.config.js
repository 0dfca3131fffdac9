// Lint: typescript-eslint's type-aware recommended rules on src/, the plain recommended ones on tests
// and scripts. Formatting is left to the editor; the rules here are about bugs.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** `_`-prefixed names are deliberately unused; `{ drop: _, ...rest }` is how a key is left out of a copy. */
const unusedVars = [
  'error',
  { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', '.stack/', 'schema/'] },
  js.configs.recommended,
  {
    files: ['src/**/*.ts', 'src/**/*.tsx'],
    extends: [...tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      // Drivers implement Promise-returning interfaces: an `async` method without `await` keeps a
      // synchronous throw a rejection, which is what callers of the interface handle.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': unusedVars,
      // Passing on a caught value or an abort signal's reason unchanged is right (callers test for
      // the very object); rejecting with a literal or a non-Error value is still reported.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingAny: true, allowThrowingUnknown: true }],
    },
  },
  {
    files: ['test/**/*.ts', '*.ts'],
    extends: [...tseslint.configs.recommended],
    rules: { '@typescript-eslint/no-unused-vars': unusedVars },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setImmediate: 'readonly', Buffer: 'readonly', AbortController: 'readonly', fetch: 'readonly', performance: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', AbortSignal: 'readonly' } },
    rules: { 'no-unused-vars': ['error', { varsIgnorePattern: '^_', argsIgnorePattern: '^_' }] },
  },
);
