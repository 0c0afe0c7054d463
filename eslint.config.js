// ESLint (flat config) with typescript-eslint's recommended rules, syntax only (no type
// information: `npm run typecheck` is the type check). Formatting is Prettier's job
// (.prettierrc.json, `npm run format:check`); the one layout rule here is the line length.
//
// typescript-eslint parses with TypeScript's JavaScript API, which TypeScript 7 (the native
// compiler this project builds with) does not ship. Its parser is given TypeScript 6, installed
// as the alias "typescript-for-lint", by resolving its require('typescript') to that package.

import { createRequire, Module } from 'node:module';

const require = createRequire(import.meta.url);
const typescriptForLint = require.resolve('typescript-for-lint');
const resolveFilename = Module._resolveFilename;
Module._resolveFilename = function (request, ...rest) {
  return resolveFilename.call(this, request === 'typescript' ? typescriptForLint : request, ...rest);
};

const { default: js } = await import('@eslint/js');
const { default: tseslint } = await import('typescript-eslint');

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'test/tools/', '.local/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 'latest',
      sourceType: 'module',
    },
    rules: {
      'max-len': ['error', { code: 160, ignoreUrls: true, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true }],
      // `_`-prefixed names are deliberately unused (destructuring to drop a field, ignored parameters).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // prom-client calls a gauge's collect() with the gauge as `this`: the owner is reached through an alias.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['monitor', 'metrics', 'progress'] }],
    },
  },
  {
    // Tests build partial and deliberately malformed objects (hostile input, trimmed API objects).
    files: ['test/**', 'bench/**'],
    rules: { '@typescript-eslint/no-explicit-any': 'off' },
  },
  {
    // Plain JavaScript run by Node (worker scripts, this file).
    files: ['**/*.mjs', '**/*.js'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setImmediate: 'readonly',
      },
    },
  },
);
