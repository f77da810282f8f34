// Reading committed stack files (Pulumi.<stack>.yaml). The `dataops:*` values with
// their namespace stripped; secure values are reported by key and never returned,
// so nothing derived from a file can carry a production secret.
import { readFileSync } from "node:fs";
import { basename, dirname } from "node:path";
import { parse } from "yaml";
import { ConfigError, NAMESPACE } from "./errors";

export interface StackFile {
    readonly values: Record<string, unknown>;
    /** Keys whose value (or a value inside it) is a `secure:` ciphertext. */
    readonly secureKeys: string[];
}

function isSecure(v: unknown): boolean {
    return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && "secure" in v;
}

function hasSecure(v: unknown): boolean {
    if (isSecure(v)) return true;
    if (Array.isArray(v)) return v.some(hasSecure);
    if (typeof v === "object" && v !== null) return Object.values(v).some(hasSecure);
    return false;
}

export function parseStackFile(text: string): StackFile {
    const doc = (parse(text) ?? {}) as { config?: Record<string, unknown> };
    const values: Record<string, unknown> = {};
    const secureKeys: string[] = [];
    for (const [key, value] of Object.entries(doc.config ?? {})) {
        if (!key.startsWith(`${NAMESPACE}:`)) continue;
        const name = key.slice(NAMESPACE.length + 1);
        if (hasSecure(value)) secureKeys.push(name);
        else values[name] = value;
    }
    return { values, secureKeys };
}

/**
 * A stack file holds a few kilobytes of config. Far larger is a mistake (a generated file, a
 * paste), and YAML and validation would take minutes on it: refused, named, before parsing.
 */
export const MAX_STACK_FILE_BYTES = 1024 * 1024;

/** Why a stack file's text cannot be read as one, or undefined when it can. */
export function stackFileProblem(text: string): string | undefined {
    const bytes = Buffer.byteLength(text, "utf8");
    if (bytes > MAX_STACK_FILE_BYTES)
        return `is ${(bytes / 1024 / 1024).toFixed(1)} MiB; a stack file may be at most ${MAX_STACK_FILE_BYTES / 1024 / 1024} MiB (it holds config, not data)`;
    try {
        parse(text);
    } catch (e) {
        return `is not valid YAML: ${(e as Error).message.split("\n")[0].replace(/:$/, "")}`;
    }
    return undefined;
}

/** Reads and parses a stack file; a missing, oversized or unparsable file is a ConfigError naming it. */
export function readStackFile(path: string): StackFile {
    const name = basename(path);
    let text: string;
    try {
        text = readFileSync(path, "utf8");
    } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "ENOENT")
            throw new ConfigError(name, [`is missing from ${dirname(path)} (every environment is checked against it; restore it from git: git checkout -- ${name})`]);
        throw e;
    }
    const problem = stackFileProblem(text);
    if (problem) throw new ConfigError(name, [problem]);
    return parseStackFile(text);
}
