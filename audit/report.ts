// The audit as a pure function of the stack files' text: validation, policies, the
// mirror diff and the access diff. No git, no engine, no cloud, no decryption: the
// CLI (index.ts) reads the files and hands them in.
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
        return { file, ...diffAccess(before?.config, after?.config) };
    });
    return { status: "compared", base: base.ref, commit: base.commit, stacks };
}
