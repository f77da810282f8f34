// Validation: each stack file through the same schema and the same checks the program
// runs (config/environment.ts), but every problem is collected, each with its file.
// Secure values are dropped by parseStackFile and never decrypted.
import { parse } from "yaml";
import { ConfigError, NAMESPACE } from "../config/errors";
import { parseConfig, resolveEnvironment } from "../config/environment";
import type { DataopsConfig } from "../config/schema";
import { parseStackFile, stackFileProblem } from "../config/stackFiles";
import { isBranchStack } from "../naming";
import type { Finding, StackText } from "./types";

/** The keys that may hold `secure:` values (program.ts SECRET_KEYS); everything else is committed text. */
export const SECRET_KEYS = ["serverAdminPassword", "loaderSecrets"] as const;

export interface ValidatedStack {
    readonly file: string;
    readonly stack: string;
    /** The `dataops:*` values, secure ones dropped; undefined when the file is not valid YAML. */
    readonly values?: Record<string, unknown>;
    /** The parsed YAML document; undefined when it does not parse. */
    readonly document?: unknown;
    /** The effective config; undefined when the file has validation errors. */
    readonly config?: DataopsConfig;
}

/** `Pulumi.prod.yaml` → `prod`. */
export function stackOf(file: string): string {
    return file.replace(/^Pulumi\./, "").replace(/\.ya?ml$/, "");
}

export function validationFinding(file: string, key: string, message: string): Finding {
    return {
        id: "validation",
        severity: "error",
        file,
        key,
        message,
        fix: key === "" ? `fix ${file} so that it parses (README: Config reference)` : `change ${key} to an allowed value (README: Config reference)`,
    };
}

/** `dataops:loaders[2].schema: "raw; drop" is not …` → key and message. */
export function splitProblem(problem: string): { key: string; message: string } {
    if (!problem.startsWith(`${NAMESPACE}:`)) return { key: "", message: problem };
    const at = problem.indexOf(": ");
    return at < 0 ? { key: "", message: problem } : { key: problem.slice(0, at), message: problem.slice(at + 2) };
}

function problemsOf(run: () => unknown): string[] {
    try {
        run();
        return [];
    } catch (e) {
        if (e instanceof ConfigError) return e.problems;
        throw e;
    }
}

/**
 * Validates one stack file. `production` (Pulumi.prod.yaml's values) is needed only for a
 * branch stack file, which is derived from it.
 */
export function validateStack(f: StackText, production?: Record<string, unknown>): { stack: ValidatedStack; findings: Finding[] } {
    const stack = stackOf(f.name);
    const problem = stackFileProblem(f.text);
    if (problem) return { stack: { file: f.name, stack }, findings: [validationFinding(f.name, "", problem)] };
    const document: unknown = parse(f.text);
    const config = (document as { config?: unknown } | null)?.config;
    if (document !== null && (typeof document !== "object" || Array.isArray(document) || (config !== undefined && (typeof config !== "object" || config === null || Array.isArray(config)))))
        return { stack: { file: f.name, stack, document }, findings: [validationFinding(f.name, "", "is not a Pulumi stack file (a map with a config: map)")] };

    const { values, secureKeys } = parseStackFile(f.text);
    const findings: Finding[] = [];
    for (const k of secureKeys.filter((s) => !(SECRET_KEYS as readonly string[]).includes(s)))
        findings.push(validationFinding(f.name, `${NAMESPACE}:${k}`, `is a secure value (only ${SECRET_KEYS.map((s) => `${NAMESPACE}:${s}`).join(" and ")} may be secret; everything else is committed text)`));

    let problems: string[];
    if (isBranchStack(stack)) {
        problems = production ? problemsOf(() => resolveEnvironment({ stack, values, production })) : [];
    } else {
        problems = problemsOf(() => resolveEnvironment({ stack, values }));
        // resolveEnvironment stops at keys that belong only to branch stacks; the schema's problems count too.
        for (const p of problemsOf(() => parseConfig(values, f.name))) if (!problems.includes(p)) problems.push(p);
    }
    for (const p of problems) {
        const { key, message } = splitProblem(p);
        findings.push(validationFinding(f.name, key, message));
    }
    const valid = findings.length === 0 && !isBranchStack(stack);
    return { stack: { file: f.name, stack, values, document, config: valid ? parseConfig(values, f.name) : undefined }, findings };
}
