// Reading committed stack files (Pulumi.<stack>.yaml). The `dataops:*` values with
// their namespace stripped; secure values are reported by key and never returned,
// so nothing derived from a file can carry a production secret.
import { readFileSync } from "node:fs";
import { parse } from "yaml";
import { NAMESPACE } from "./errors";

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

export function readStackFile(path: string): StackFile {
    return parseStackFile(readFileSync(path, "utf8"));
}
