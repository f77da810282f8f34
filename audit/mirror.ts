// The mirror diff: a branch stack's effective config, derived from production's
// committed file exactly as the program derives it (resolveEnvironment), and every
// difference from production with the policy key that allows it.
import { ConfigError } from "../config/errors";
import { resolveEnvironment } from "../config/environment";
import type { DataopsConfig, ServerConnection } from "../config/schema";
import { EMBEDDED_DEFAULT_MAJOR, EMBEDDED_MAJORS, embeddedServer } from "../local/embedded";
import { isBranchStack } from "../naming";
import { PRODUCTION_FILE } from "./policies";
import type { Finding, MirrorDifference, MirrorSection } from "./types";

/**
 * Where `npm run up` puts a branch when production names no shared server: the embedded server
 * of the major production pins (local/embedded.ts; a major it has no build of is refused by up).
 */
export function embeddedServerFor(engineVersion: string): ServerConnection {
    const major = Number(/^\d+/.exec(engineVersion)?.[0]);
    return embeddedServer(EMBEDDED_MAJORS.includes(major) ? major : EMBEDDED_DEFAULT_MAJOR);
}

/**
 * Reasons that explain a difference: a `branches.*` policy key, the documented rule that
 * branch environments are disposable, or the branch stack's own server (a branch stack may
 * say where it runs, never what it contains).
 */
export const EXPLAINED_BY: readonly RegExp[] = [/\bbranches\.[A-Za-z]+/, /^branch environments are disposable$/, /^dataops:server\b/];

export function isExplained(reason: string): boolean {
    return EXPLAINED_BY.some((r) => r.test(reason));
}

export interface MirrorRequest {
    readonly stack: string;
    /** The branch the stack was named after, when known. */
    readonly branch?: string;
}

export function mirrorSection(
    request: MirrorRequest,
    production: { readonly values?: Record<string, unknown>; readonly config?: DataopsConfig } | undefined,
): { section: MirrorSection; findings: Finding[] } {
    const { stack, branch } = request;
    if (!isBranchStack(stack)) return { section: { status: "not-applicable", stack, reason: `stack ${stack} is not a branch stack (br-…); it has its own committed file` }, findings: [] };
    if (!production?.values) return { section: { status: "not-applicable", stack, reason: `${PRODUCTION_FILE} was not found` }, findings: [] };
    if (!production.config) return { section: { status: "not-applicable", stack, reason: `${PRODUCTION_FILE} has validation errors (see Validation)` }, findings: [] };

    const policy = production.config.branches;
    // The embedded server stands in only where a branch needs a server and production names none.
    const embedded = policy.target === "server" && policy.server === undefined;
    const local = embeddedServerFor(production.config.warehouse.engineVersion);
    const values: Record<string, unknown> = { ...(branch !== undefined ? { branch } : {}), ...(embedded ? { server: local } : {}) };
    const server = policy.target !== "server" ? undefined : embedded ? `embedded local PostgreSQL (${local.host}:${local.port}), as npm run up` : "branches.server";
    const file = `stack ${stack}`;
    try {
        const env = resolveEnvironment({ stack, values, production: production.values });
        const differences: MirrorDifference[] = env.differences.map((d) => ({
            path: d.path,
            // null, not undefined, so every difference has the same keys in the JSON report
            production: d.production ?? null,
            branch: d.branch ?? null,
            reason: d.reason,
            explained: isExplained(d.reason),
        }));
        const findings = differences
            .filter((d) => !d.explained)
            .map((d): Finding => ({
                id: "mirror-unexplained",
                severity: "error",
                file,
                key: `dataops:${d.path}`,
                message: `differs from production (${show(d.production)} → ${show(d.branch)}) for a reason no branches.* policy key gives: ${d.reason}`,
                fix: "make the difference follow a key of production's branches policy (config/mirror.ts), or remove it",
            }));
        return { section: { status: "derived", stack, branch, server, differences }, findings };
    } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        const findings = e.problems.map((p): Finding => {
            const at = p.indexOf(": ");
            return {
                id: "mirror-invalid",
                severity: "error",
                file,
                key: p.startsWith("dataops:") && at > 0 ? p.slice(0, at) : "",
                message: p.startsWith("dataops:") && at > 0 ? p.slice(at + 2) : p,
                fix: `change production's branches policy in ${PRODUCTION_FILE} so that a branch can be derived from it`,
            };
        });
        return { section: { status: "not-applicable", stack, reason: "the branch config cannot be derived from production (see the findings)" }, findings };
    }
}

/** A value as the mirror diff shows it. */
export function show(v: unknown): string {
    return v === undefined || v === null ? "(none)" : JSON.stringify(v);
}
