import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

// relative asset paths: the console is served from any folder (the local stack, S3 behind CloudFront)
export default defineConfig({
  base: './',
  plugins: [preact()],
  build: { outDir: 'dist', emptyOutDir: true, sourcemap: false, target: 'es2020' },
});
