// How long index.ts's program takes to register its resources for N loaders, under
// mocks (no engine): prints the milliseconds on its last line.
import * as pulumi from "@pulumi/pulumi";

async function main(n: number): Promise<void> {
    pulumi.runtime.setMocks(
        { newResource: (a) => ({ id: `${a.name}-id`, state: { ...a.inputs, value: "x" } }), call: (a) => a.inputs },
        "dataops",
        `bench-n${n}`,
        false,
    );
    const { generatedConfig } = await import("./configs");
    const start = performance.now();
    const { defineEnvironment } = await import("../program");
    const values = generatedConfig(n, { host: "localhost", port: 54329, major: 16, user: "postgres", password: "x", dataDir: "", logFile: "", startedNow: false });
    const p = defineEnvironment({ stack: `bench-n${n}`, values, serverAdminPassword: "x", build: { projectVersion: "0", commit: "0" } });
    await new Promise((r) => p.platform.summary.apply(r));
    console.log(performance.now() - start);
}

main(Number(process.argv[2] ?? 200)).catch((e) => {
    console.error(e);
    process.exit(1);
});
