// A Singer tap piped into a Singer target, as `tap | target` would, with the row cap of
// a loader in `sample` mode applied between them: every message passes except RECORDs
// of a stream past its cap, so SCHEMA and STATE reach the target as the tap sent them.
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** Counts RECORD messages per stream and says which to pass: at most `limit` a stream (no limit: all). */
export class RecordCap {
    readonly passed: Record<string, number> = {};
    readonly dropped: Record<string, number> = {};

    constructor(private readonly limit?: number) {}

    /** Whether a line of the tap's output goes on to the target. */
    pass(line: string): boolean {
        if (!line.includes('"RECORD"')) return line.trim().length > 0;
        let message: { type?: string; stream?: string };
        try {
            message = JSON.parse(line) as { type?: string; stream?: string };
        } catch {
            return true; // not ours to judge: the target reports what it cannot read
        }
        if (message.type !== "RECORD" || typeof message.stream !== "string") return true;
        const n = this.passed[message.stream] ?? 0;
        if (this.limit !== undefined && n >= this.limit) {
            this.dropped[message.stream] = (this.dropped[message.stream] ?? 0) + 1;
            return false;
        }
        this.passed[message.stream] = n + 1;
        return true;
    }
}

export interface SingerRun {
    readonly tap: string;
    readonly tapConfig: Readonly<Record<string, unknown>>;
    readonly target: string;
    /** Holds the loader's password: written to a private file that is removed afterwards. */
    readonly targetConfig: Readonly<Record<string, unknown>>;
    /** RECORDs per stream; undefined: all. */
    readonly limit?: number;
    /** A folder of the project's own (.dataops/run): config files never go to a shared temp folder. */
    readonly workDir: string;
    readonly env?: NodeJS.ProcessEnv;
    /** The tools' own log lines (stderr). */
    readonly log: (line: string) => void;
}

export interface SingerResult {
    readonly records: Record<string, number>;
    readonly dropped: Record<string, number>;
}

export async function runSinger(o: SingerRun): Promise<SingerResult> {
    mkdirSync(o.workDir, { recursive: true, mode: 0o700 });
    const dir = mkdtempSync(join(o.workDir, "singer-"));
    try {
        const tapConfig = join(dir, "tap.json");
        const targetConfig = join(dir, "target.json");
        writeFileSync(tapConfig, JSON.stringify(o.tapConfig), { mode: 0o600 });
        writeFileSync(targetConfig, JSON.stringify(o.targetConfig), { mode: 0o600 });
        return await pipe(o, tapConfig, targetConfig);
    } finally {
        rmSync(dir, { recursive: true, force: true });
    }
}

function pipe(o: SingerRun, tapConfig: string, targetConfig: string): Promise<SingerResult> {
    return new Promise((resolve, reject) => {
        const env = { ...process.env, ...o.env };
        const tap = spawn(o.tap, ["--config", tapConfig], { env, stdio: ["ignore", "pipe", "pipe"] });
        const target = spawn(o.target, ["--config", targetConfig], { env, stdio: ["pipe", "pipe", "pipe"] });
        const cap = new RecordCap(o.limit);
        const codes: { tap?: number | null; target?: number | null } = {};
        const tails = { tap: "", target: "" };
        const keep = (who: "tap" | "target") => (b: Buffer) => {
            const text = b.toString();
            tails[who] = (tails[who] + text).slice(-3000);
            for (const line of text.split("\n")) if (/\b(ERROR|CRITICAL|Traceback)\b/.test(line)) o.log(`  ${who}: ${line.trim()}`);
        };
        tap.stderr.on("data", keep("tap"));
        target.stderr.on("data", keep("target"));
        target.stdout.resume(); // the target's STATE output: not kept between runs here
        target.stdin.on("error", () => undefined); // a target that died: its exit code says why
        const lines = createInterface({ input: tap.stdout, crlfDelay: Infinity });
        // Back-pressure: a paused readline still emits the lines it has already read, so one
        // drain listener at a time resumes it.
        let waiting = false;
        lines.on("line", (line) => {
            if (!cap.pass(line)) return;
            if (!target.stdin.write(`${line}\n`) && !waiting) {
                waiting = true;
                lines.pause();
                target.stdin.once("drain", () => {
                    waiting = false;
                    lines.resume();
                });
            }
        });
        lines.on("close", () => target.stdin.end());
        let failed = false;
        const fail = (e: Error) => {
            if (failed) return;
            failed = true;
            tap.kill("SIGTERM");
            target.kill("SIGTERM");
            reject(e);
        };
        tap.on("error", (e) => fail(new Error(`could not start the tap ${o.tap}: ${e.message}`)));
        target.on("error", (e) => fail(new Error(`could not start the target ${o.target}: ${e.message}`)));
        const done = () => {
            if (codes.tap === undefined || codes.target === undefined || failed) return;
            if (codes.tap !== 0) return fail(new Error(`the tap exited ${codes.tap}:\n${tails.tap.trim()}`));
            if (codes.target !== 0) return fail(new Error(`the target exited ${codes.target}:\n${tails.target.trim()}`));
            resolve({ records: cap.passed, dropped: cap.dropped });
        };
        tap.on("close", (code) => {
            codes.tap = code;
            done();
        });
        target.on("close", (code) => {
            codes.target = code;
            done();
        });
    });
}
