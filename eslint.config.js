import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.local/', 'coverage/', 'test-artifacts/'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': 'error',
      'no-restricted-imports': 'off',
    },
  },
  {
    // src/lib is the product and must stay host-independent (DESIGN.md section 2).
    files: ['src/lib/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [{ name: '@azure/functions', message: 'src/lib must not depend on the Functions host.' }] }],
    },
  },
);
