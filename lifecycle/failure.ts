// What a failed command says: the engine's own error lines once (its whole output was
// already shown live), then one paragraph that names the config key, the host and what
// to do, and the same for the merge-request summary. Pure.
import type { ServerConnection } from "../config/schema";
import { shellQuote } from "./connection";
import { SUMMARY_MARKER } from "./summary";

/** The Automation API's error repeats the engine's output under stdout:, stderr: and err?:. */
function isEngineError(text: string): boolean {
    return /\n\s*stderr:/.test(text) || /^code: -?\d+/m.test(text);
}

/** The distinct `error:` lines of an engine failure, or the message itself. */
export function failureLines(e: unknown): string[] {
    const text = String((e as Error)?.message ?? e);
    if (!isEngineError(text)) return [text.trim()];
    const seen = new Set<string>();
    for (const raw of text.split("\n")) {
        const line = raw.replace(/^\s*(err\?|stderr|stdout):\s*/, "").trim();
        if (!/^error:/i.test(line) || /^error: update failed$/i.test(line) || /^error: Command failed/i.test(line)) continue;
        seen.add(line);
    }
    return seen.size > 0 ? [...seen] : [text.split("\n").find((l) => l.trim().length > 0)?.trim() ?? text];
}

export interface FailureContext {
    readonly command: string;
    readonly branch?: string;
    /** Production's shared branch server, when this run used it. */
    readonly branchServer?: ServerConnection;
}

/** One paragraph: which key, which host, what next. Undefined when there is nothing specific to say. */
export function adviceFor(e: unknown, c: FailureContext): string | undefined {
    const text = String((e as Error)?.message ?? e);
    const s = c.branchServer;
    if (s && /password authentication failed|28P01/i.test(text))
        return `The branch server ${s.host}:${s.port} (dataops:branches.server in Pulumi.prod.yaml) refused the admin user ${s.adminUser}: DATAOPS_SERVER_ADMIN_PASSWORD is not its password. Set the CI variable to the right one and run the job again.`;
    if (s && /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|timeout expired|could not connect|Connection terminated unexpectedly/i.test(text))
        return `The branch server ${s.host}:${s.port} (dataops:branches.server in Pulumi.prod.yaml) could not be reached from here. Check that this runner can reach that host and port (network, firewall, VPN), or point dataops:branches.server at a server it can reach; to try the change on your machine instead, run npm run up (the embedded server).`;
    if (/is locked by another update/i.test(text)) return "Another run holds this environment. Wait for it (or raise --lock-timeout) and run the job again.";
    return undefined;
}

/** A failed operation with what to do about it; the CLI prints the cause's error lines, then the advice. */
export class Advised extends Error {
    constructor(
        readonly cause: unknown,
        readonly advice: string | undefined,
    ) {
        super(String((cause as Error)?.message ?? cause));
    }
}

/** The merge-request summary of an up that failed: what failed, and what to do. */
export function failureSummaryMarkdown(stack: string, e: unknown, c: FailureContext): string {
    const advice = adviceFor(e, c);
    const branch = c.branch ?? "";
    return [
        SUMMARY_MARKER,
        `### Branch environment \`${stack}\`: the update failed`,
        "",
        "```",
        ...failureLines(e),
        "```",
        "",
        advice ?? "The job log above has the engine's whole output. Fix the cause and push again: the next update goes on from what this one did.",
        "",
        `Retry by hand: \`npx dataops up --branch ${shellQuote(branch)}\`; remove it: \`npx dataops destroy --branch ${shellQuote(branch)} --yes\``,
        "",
    ].join("\n");
}
