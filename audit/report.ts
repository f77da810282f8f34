// The audit as a pure function of the stack files' text: validation, policies, the
// mirror diff and the access diff. No git, no engine, no cloud, no decryption: the
// CLI (index.ts) reads the files and hands them in.
import type { DataopsConfig } from "../config/schema";
import { parseVersion } from "../config/version";
import { PRODUCTION_STACK, isBranchStack } from "../naming";
import { diffAccess } from "./access";
import { type MirrorRequest, mirrorSection } from "./mirror";
import { PRODUCTION_FILE, policyFindings } from "./policies";
import { plaintextSecrets } from "./secrets";
import type { AccessSection, AuditReport, Finding, StackAccessDiff, StackText } from "./types";
import { type ValidatedStack, stackOf, validateStack } from "./validate";

export interface BaseFiles {
    /** The ref as the user gave it (or the default), e.g. `main`. */
    readonly ref: string;
    readonly commit: string;
    /** The stack files at that commit. */
    readonly files: readonly StackText[];
}

export interface AuditOptions {
    /** The branch stack whose mirror to show, or why there is none. */
    readonly mirror: MirrorRequest | { readonly skip: string };
    /** The commit to diff access against, or why there is none. */
    readonly base: BaseFiles | { readonly skip: string };
}

/** `Pulumi.<stack>.yaml`, but not the project file `Pulumi.yaml`. */
export function isStackFile(name: string): boolean {
    return /^Pulumi\.[^/]+\.yaml$/.test(name);
}

export function auditProject(files: readonly StackText[], options: AuditOptions): AuditReport {
    const stackFiles = files.filter((f) => isStackFile(f.name)).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const prodText = stackFiles.find((f) => f.name === PRODUCTION_FILE);
    const prod = prodText ? validateStack(prodText) : undefined;

    const validation: Finding[] = [];
    const policies: Finding[] = [];
    const skipped: { file: string; reason: string }[] = [];
    const stacks: ValidatedStack[] = [];
    for (const f of stackFiles) {
        const { stack, findings } = f.name === PRODUCTION_FILE && prod ? prod : validateStack(f, prod?.stack.config ? prod.stack.values : undefined);
        stacks.push(stack);
        validation.push(...findings);
        if (stack.document !== undefined) policies.push(...plaintextSecrets(f.name, stack.document));
        if (stack.config && stack.values) policies.push(...policyFindings(f.name, stack.config, stack.values));
        else if (isBranchStack(stack.stack)) skipped.push({ file: f.name, reason: `a branch stack: derived from ${PRODUCTION_FILE}, checked by the mirror diff` });
        else skipped.push({ file: f.name, reason: "policies not checked until its validation errors are fixed (secrets were scanned)" });
    }

    const mirror =
        "skip" in options.mirror
            ? { section: { status: "not-applicable" as const, reason: options.mirror.skip }, findings: [] }
            : mirrorSection(options.mirror, prod?.stack);

    // Every branch is derived from production's file, and up refuses without it: its absence is a finding.
    if (!prodText)
        validation.unshift({
            id: "prod-missing",
            severity: "error",
            file: PRODUCTION_FILE,
            key: "",
            message: "is missing: production's config, from which every branch environment is derived, is not in the tree",
            fix: `restore it (git checkout -- ${PRODUCTION_FILE}) or commit production's stack file`,
        });
    policies.push(...versionFindings(stacks, options.base));
    const findings = [...validation, ...policies, ...mirror.findings];
    const errors = findings.filter((f) => f.severity === "error").length;
    return {
        files: stackFiles.map((f) => f.name),
        findings,
        skipped,
        mirror: mirror.section,
        access: accessSection(stacks, options.base),
        summary: { findings: findings.length, errors, warnings: findings.length - errors },
    };
}

function accessSection(head: readonly ValidatedStack[], base: AuditOptions["base"]): AccessSection {
    if ("skip" in base) return { status: "no-base", reason: base.skip };
    const baseStacks = base.files.filter((f) => isStackFile(f.name)).map((f) => validateStack(f).stack);
    const names = [...new Set([...head.map((s) => s.file), ...baseStacks.map((s) => s.file)])]
        .filter((n) => !isBranchStack(stackOf(n)))
        // Production first: it is what a reviewer most needs to see.
        .sort((a, b) => (stackOf(a) === PRODUCTION_STACK ? -1 : stackOf(b) === PRODUCTION_STACK ? 1 : a < b ? -1 : a > b ? 1 : 0));
    const stacks = names.map((file): StackAccessDiff => {
        const before = baseStacks.find((s) => s.file === file);
        const after = head.find((s) => s.file === file);
        if (after && !after.config) return { file, added: [], removed: [], note: "not compared: it has validation errors" };
        if (before && !before.config) return { file, added: [], removed: [], note: `not compared: it was not valid at ${base.ref}` };
        const change = before?.config && after?.config ? versionChange(before.config, after.config) : undefined;
        return { file, ...diffAccess(before?.config, after?.config), ...(change ? { version: change.text } : {}) };
    });
    return { status: "compared", base: base.ref, commit: base.commit, stacks };
}

/** `warehouse: 16.4 → 17.2, major`, when the pinned engine version changed. */
export function versionChange(before: DataopsConfig, after: DataopsConfig): { text: string; major: boolean; ahead: boolean } | undefined {
    const [from, to] = [before.warehouse.engineVersion, after.warehouse.engineVersion];
    if (from === to) return undefined;
    const [a, b] = [parseVersion(from), parseVersion(to)];
    const major = a.major !== b.major;
    const ahead = b.major > a.major || (b.major === a.major && b.minor > a.minor);
    return { text: `warehouse: ${from} → ${to}, ${major ? "major" : "minor"}${ahead ? "" : " (a downgrade)"}`, major, ahead };
}

/**
 * A version change is something to review: a major one must be acknowledged in the same file
 * (warehouse.upgrade.allowMajor), and production's pin may run ahead of production on this
 * branch (the rehearsal) only where production's policy at the base allows it.
 */
function versionFindings(head: readonly ValidatedStack[], base: AuditOptions["base"]): Finding[] {
    if ("skip" in base) return [];
    const baseStacks = base.files.filter((f) => isStackFile(f.name)).map((f) => validateStack(f).stack);
    const out: Finding[] = [];
    for (const after of head) {
        const before = baseStacks.find((s) => s.file === after.file);
        if (!before?.config || !after.config || isBranchStack(stackOf(after.file))) continue;
        const change = versionChange(before.config, after.config);
        if (!change) continue;
        if (change.major && !after.config.warehouse.upgrade.allowMajor)
            out.push({
                id: "version-major",
                severity: "error",
                file: after.file,
                key: "dataops:warehouse.engineVersion",
                message: `changes ${change.text.replace("warehouse: ", "PostgreSQL ")} without dataops:warehouse.upgrade.allowMajor: true (a major upgrade rewrites the data files and cannot be undone in place)`,
                fix: "set dataops:warehouse.upgrade.allowMajor: true in this merge request, after the branch environment ran the new major (dbt build, loaders)",
            });
        if (after.file === PRODUCTION_FILE && change.ahead && !before.config.branches.allowVersionAhead)
            out.push({
                id: "version-ahead",
                severity: "error",
                file: after.file,
                key: "dataops:warehouse.engineVersion",
                message: `pins PostgreSQL ${after.config.warehouse.engineVersion}, ahead of production's ${before.config.warehouse.engineVersion}: this branch's environment would run it first, which production's policy at ${base.ref} does not allow (branches.allowVersionAhead is false)`,
                fix: "allow rehearsals in production's policy first (dataops:branches.allowVersionAhead: true, its own merge request), or keep production's version",
            });
    }
    return out;
}
