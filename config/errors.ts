// Turning zod issues into messages a data engineer can act on:
//   dataops:loaders[2].schema: "raw; drop" is not a valid schema name (lowercase letters, …)
import type { z } from "zod";

export const NAMESPACE = "dataops";

export function keyPath(path: ReadonlyArray<PropertyKey>): string {
    let out = NAMESPACE;
    path.forEach((p, i) => {
        if (typeof p === "number") out += `[${p}]`;
        else out += `${i === 0 ? ":" : "."}${String(p)}`;
    });
    return out;
}

function given(value: unknown): string {
    const s = JSON.stringify(value);
    if (s === undefined) return String(value);
    return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

export function formatIssue(issue: z.core.$ZodIssue): string {
    // For an unknown key zod points at the object; name the key itself.
    if (issue.code === "unrecognized_keys") {
        return issue.keys.map((k) => `${keyPath([...issue.path, k])}: ${issue.message}`).join("\n");
    }
    const input = (issue as { input?: unknown }).input;
    const subject = input === undefined ? "" : `${given(input)} `;
    return `${keyPath(issue.path)}: ${subject}${issue.message}`;
}

/** Raised before any resource is registered; its message lists every problem, one a line. */
export class ConfigError extends Error {
    constructor(
        readonly source: string,
        readonly problems: string[],
    ) {
        super(`${source}: invalid configuration\n${problems.map((p) => `  - ${p}`).join("\n")}`);
        this.name = "ConfigError";
    }
}

export function toProblems(error: z.ZodError): string[] {
    return error.issues.flatMap((i) => formatIssue(i).split("\n"));
}
