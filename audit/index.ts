// `dataops audit`: validation, policies, the mirror diff and the access diff of the
// committed stack files. Seconds, offline: no engine, no cloud account, no decryption.
import { parseArgs } from "node:util";
import { currentBranch } from "../config/git";
import { stackNameForBranch } from "../naming";
import { type AuditOptions, auditProject } from "./report";
import { defaultBase, isGitRepository, resolveCommit, stackFilesAt, workingTreeStackFiles } from "./git";
import { renderMarkdown, renderText } from "./text";
import { type AuditReport, EXIT } from "./types";

export { auditProject, type AuditOptions, type BaseFiles, isStackFile } from "./report";
export { diffAccess, grantsOf, privilegeLines } from "./access";
export { EXPLAINED_BY, embeddedServerFor, mirrorSection } from "./mirror";
export { policyFindings } from "./policies";
export { namesSecret, plaintextSecrets } from "./secrets";
export { MARKDOWN_MARKER, renderMarkdown, renderText } from "./text";
export { validateStack } from "./validate";
export * from "./types";

export const AUDIT_SUMMARY = "Check the stack files: validation, policies, the branch mirror diff and the access diff";

export const AUDIT_USAGE = [
    "dataops audit [--stack S] [--base REF] [--json | --markdown]",
    "",
    "Validates every committed Pulumi.*.yaml with the program's schema; checks the policies",
    "(production protected, encrypted, backed up and private; no plaintext secret; explicit branch",
    "TTL and size caps; pinned loaders; no role but a loader writes a raw schema); derives the",
    "current branch's environment (or stack S's) from production and lists every difference with",
    "the policy key that allows it; and diffs each role's privileges against REF (default: the merge",
    "base with the default branch). Offline: no engine, no cloud account, no decryption.",
    "--json prints the report for machines, --markdown for a merge-request comment.",
    "Exit status: 0 clean, 1 findings, 2 usage error.",
].join("\n");

export interface AuditIo {
    out(line: string): void;
    err(line: string): void;
    env: Readonly<Record<string, string | undefined>>;
    cwd: string;
}

class UsageError extends Error {}

const STACK_NAME = /^[A-Za-z0-9_.-]{1,100}$/;

function options(root: string, values: { stack?: string; base?: string }, io: AuditIo): AuditOptions {
    let mirror: AuditOptions["mirror"];
    if (values.stack !== undefined) {
        if (!STACK_NAME.test(values.stack)) throw new UsageError(`--stack ${JSON.stringify(values.stack)} is not a stack name (letters, digits, _ . -)`);
        mirror = { stack: values.stack };
    } else {
        const branch = currentBranch(io.env, root);
        mirror = branch ? { stack: stackNameForBranch(branch), branch } : { skip: "no current branch (not in CI, detached HEAD or not a git repository); give --stack S" };
    }

    let base: AuditOptions["base"];
    if (values.base !== undefined) {
        if (values.base === "") throw new UsageError("--base is empty (give a commit, branch or tag)");
        if (!isGitRepository(root)) throw new UsageError(`--base ${values.base}: ${root} is not a git repository`);
        const commit = resolveCommit(root, values.base);
        if (!commit) throw new UsageError(`--base ${values.base}: no such commit, branch or tag`);
        base = { ref: values.base, commit, files: stackFilesAt(root, commit) };
    } else {
        const found = defaultBase(root, io.env);
        base = "skip" in found ? found : { ...found, files: stackFilesAt(root, found.commit) };
    }
    return { mirror, base };
}

/** The audit's JSON: the report as is; its keys are built in a fixed order. */
export function renderJson(report: AuditReport): string {
    return JSON.stringify(report, null, 2);
}

export async function runAudit(root: string, argv: string[], io: AuditIo): Promise<number> {
    try {
        let parsed;
        try {
            parsed = parseArgs({
                args: argv,
                options: { stack: { type: "string" }, base: { type: "string" }, json: { type: "boolean" }, markdown: { type: "boolean" }, help: { type: "boolean", short: "h" } },
                allowPositionals: false,
                strict: true,
            });
        } catch (e) {
            throw new UsageError((e as Error).message);
        }
        const v = parsed.values as { stack?: string; base?: string; json?: boolean; markdown?: boolean; help?: boolean };
        if (v.help === true) {
            io.out(AUDIT_USAGE);
            return EXIT.clean;
        }
        if (v.json === true && v.markdown === true) throw new UsageError("give only one of --json and --markdown");
        const report = auditProject(workingTreeStackFiles(root), options(root, v, io));
        const lines = v.json === true ? [renderJson(report)] : v.markdown === true ? renderMarkdown(report) : renderText(report);
        for (const l of lines) io.out(l);
        return report.summary.findings > 0 ? EXIT.findings : EXIT.clean;
    } catch (e) {
        if (!(e instanceof UsageError)) throw e;
        io.err(`dataops audit: ${e.message}`);
        io.err(`Usage: ${AUDIT_USAGE.split("\n")[0]}`);
        return EXIT.usage;
    }
}
