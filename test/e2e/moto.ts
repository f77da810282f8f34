// A real S3 API for the end-to-end suites: moto's server (pinned in tools/python.json, installed
// into .dataops/tools/moto like the other Python tools), on loopback and a free port, started by
// the suite and stopped after it.
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3";
import { ensureTool } from "../../local/tools";

export interface Moto {
    readonly endpoint: string;
    /** Credentials and region moto accepts (any will do; none are real). */
    readonly env: Record<string, string>;
    createBucket(name: string): Promise<void>;
    stop(): Promise<void>;
}

async function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const s = createServer();
        s.once("error", reject);
        s.listen(0, "127.0.0.1", () => {
            const port = (s.address() as { port: number }).port;
            s.close(() => resolve(port));
        });
    });
}

export async function startMoto(root: string, log: (line: string) => void = () => undefined): Promise<Moto> {
    const bin = await ensureTool(root, "moto", log);
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    const child: ChildProcess = spawn(bin, ["-H", "127.0.0.1", "-p", String(port)], { stdio: ["ignore", "ignore", "pipe"] });
    let said = "";
    child.stderr!.on("data", (b: Buffer) => (said = (said + b.toString()).slice(-4000)));
    const exited = new Promise<void>((r) => child.once("exit", () => r()));
    const deadline = Date.now() + 60_000;
    for (;;) {
        if (child.exitCode !== null) throw new Error(`moto_server exited ${child.exitCode}:\n${said}`);
        try {
            if ((await fetch(`${endpoint}/moto-api/`)).status < 500) break;
        } catch {
            // not listening yet
        }
        if (Date.now() > deadline) {
            child.kill("SIGTERM");
            throw new Error(`moto_server did not answer on ${endpoint} within 60s:\n${said}`);
        }
        await new Promise((r) => setTimeout(r, 200));
    }
    const env = { AWS_ACCESS_KEY_ID: "moto-test", AWS_SECRET_ACCESS_KEY: "moto-test", AWS_REGION: "us-east-1" };
    return {
        endpoint,
        env,
        async createBucket(name) {
            process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
            const s3 = new S3Client({ endpoint, region: env.AWS_REGION, forcePathStyle: true, credentials: { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY } });
            await s3.send(new CreateBucketCommand({ Bucket: name }));
            s3.destroy();
        },
        async stop() {
            if (child.exitCode === null) {
                child.kill("SIGTERM");
                await exited;
            }
        },
    };
}
