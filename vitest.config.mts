import { defineConfig } from "vitest/config";

export default defineConfig({
    test: {
        projects: [
            {
                test: {
                    name: "unit",
                    include: ["test/**/*.test.ts"],
                    exclude: ["test/e2e/**", "test/reliability/**"],
                    testTimeout: 30_000,
                },
            },
            {
                test: {
                    name: "e2e",
                    include: ["test/e2e/**/*.test.ts", "test/reliability/**/*.test.ts"],
                    // Real engine, real PostgreSQL: updates take seconds to minutes; one file at a time.
                    testTimeout: 600_000,
                    hookTimeout: 1_800_000,
                    fileParallelism: false,
                },
            },
        ],
    },
});
