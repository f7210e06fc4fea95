// Rules that catch bugs, not style: tsc already checks types and unused names. Type-aware, so that a
// promise nobody awaits or catches (a lost rejection, a step that runs out of order) is an error.
// `npm run lint` runs it; .ci/run runs it before the tests.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'native/build/', 'test-artifacts/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      parserOptions: { project: ['./tsconfig.test.json', './app/sim-page/tsconfig.json'], tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: false }],
      '@typescript-eslint/await-thenable': 'error',
      // tsc's noUnusedLocals / noUnusedParameters already check this, with its `_` convention.
      '@typescript-eslint/no-unused-vars': 'off',
      // Handlers installed as `function (this: Socket)` reach their owner through a named alias.
      '@typescript-eslint/no-this-alias': 'off',
      // Style, not a bug: an initial value a later assignment always replaces.
      'prefer-const': 'off',
      'no-useless-assignment': 'off',
    },
  },
  // The page's browser code: tsc with checkJs (app/sim-page/tsconfig.json, lib dom) knows its globals.
  { files: ['app/sim-page/**/*.js'], rules: { 'no-undef': 'off' } },
  { files: ['*.config.{js,ts}'], ...tseslint.configs.disableTypeChecked },
);
