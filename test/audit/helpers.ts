// Shared by the audit tests: fixture folders as the audit reads them, and a recording io.
import { readdirSync, readFileSync } from "node:fs";
import * as path from "node:path";
import type { StackText } from "../../audit";

export const FIXTURES = path.join(__dirname, "fixtures");
export const GOLDEN = path.join(__dirname, "golden");
/** The project itself. */
export const ROOT = path.resolve(__dirname, "../..");

/** The stack files of a folder, e.g. `fixtures/prod-protect`. */
export function stackTexts(dir: string): StackText[] {
    return readdirSync(dir)
        .filter((n) => n.endsWith(".yaml"))
        .sort()
        .map((name) => ({ name, text: readFileSync(path.join(dir, name), "utf8") }));
}

export function fixture(name: string): StackText[] {
    return stackTexts(path.join(FIXTURES, name));
}

export interface RecordingIo {
    readonly out: string[];
    readonly err: string[];
    readonly io: { out(line: string): void; err(line: string): void; env: Record<string, string | undefined>; cwd: string };
}

/** An io that records what it prints; no CI variables, so the branch comes from git or --stack. */
export function recordingIo(cwd: string, env: Record<string, string | undefined> = {}): RecordingIo {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { out: (l) => out.push(l), err: (l) => err.push(l), env, cwd } };
}
