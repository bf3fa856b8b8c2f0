import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 120_000,
    hookTimeout: 300_000,
    // Two cores: onnxruntime sessions are heavy; keep test files from fighting over them.
    fileParallelism: false,
    pool: "forks",
  },
});
