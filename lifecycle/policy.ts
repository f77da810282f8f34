// Pure rules of the branch lifecycle: what tags a branch stack carries, when it
// expires, and which stacks prune takes. No engine, no clock of its own: the caller
// passes `now`, so tests use a fake one.
import { expiresAt } from "../config/environment";
import { isBranchStack } from "../naming";

export const TAG = {
    branch: "dataops:branch",
    commit: "dataops:commit",
    author: "dataops:author",
    createdAt: "dataops:created-at",
    expiresAt: "dataops:expires-at",
    target: "dataops:target",
    kind: "dataops:kind",
    keep: "dataops:keep",
    /** Where a branch's data came from (`branches.data`), set by the up that made the copy. */
    data: "dataops:data",
    /** What the server runs, and the pin: "16.14 (pinned 16.4)". */
    postgres: "dataops:postgres",
} as const;

export interface UpIdentity {
    readonly branch: string;
    readonly commit: string;
    readonly author: string;
    readonly target: string;
    readonly ttl: string;
}

/** Tags for a branch stack at an `up`: created-at is kept from the first up; expires-at is renewed (like GitLab's auto_stop_in). */
export function upTags(id: UpIdentity, now: Date, existing: Readonly<Record<string, string>> = {}): Record<string, string> {
    return {
        [TAG.kind]: "branch",
        [TAG.branch]: id.branch,
        [TAG.commit]: id.commit,
        [TAG.author]: id.author,
        [TAG.target]: id.target,
        [TAG.createdAt]: existing[TAG.createdAt] ?? now.toISOString(),
        [TAG.expiresAt]: expiresAt(id.ttl, now).toISOString(),
    };
}

export interface StackInfo {
    readonly name: string;
    readonly tags: Readonly<Record<string, string>>;
    readonly lastUpdate?: string;
    readonly resourceCount?: number;
}

export type PruneReason = "expired" | "branch-gone";

export interface PruneDecision {
    readonly stack: string;
    readonly branch?: string;
    readonly action: "destroy" | "keep";
    readonly reasons: PruneReason[];
    readonly detail: string;
}

/** Is this stack one that the lifecycle made for a branch (and so may destroy)? */
export function isBranchEnvironment(s: StackInfo): boolean {
    return isBranchStack(s.name) && s.tags[TAG.kind] === "branch" && typeof s.tags[TAG.branch] === "string";
}

/**
 * Which branch stacks to prune. `liveBranches` is the remote's branch list (undefined:
 * not checked). A stack whose expiry cannot be read is treated as expired: an environment
 * nobody can account for costs money.
 */
export function selectForPrune(stacks: readonly StackInfo[], now: Date, liveBranches?: ReadonlySet<string>): PruneDecision[] {
    const out: PruneDecision[] = [];
    // Sorted by stack name: the same input always prints the same list.
    for (const s of [...stacks].filter(isBranchEnvironment).sort((a, b) => a.name.localeCompare(b.name))) {
        const branch = s.tags[TAG.branch];
        const reasons: PruneReason[] = [];
        const expiry = Date.parse(s.tags[TAG.expiresAt] ?? "");
        if (Number.isNaN(expiry) || expiry <= now.getTime()) reasons.push("expired");
        if (liveBranches && !liveBranches.has(branch)) reasons.push("branch-gone");
        if (reasons.length === 0) continue;
        const detail = reasons.map((r) => (r === "expired" ? `expired ${s.tags[TAG.expiresAt] ?? "(no expiry recorded)"}` : `branch ${branch} is gone from the remote`)).join("; ");
        const keep = s.tags[TAG.keep] === "true";
        out.push({ stack: s.name, branch, action: keep ? "keep" : "destroy", reasons, detail: keep ? `${detail} (kept: ${TAG.keep}=true)` : detail });
    }
    return out;
}

/** "3h", "2d 4h": how long ago, for `ls`. */
export function age(from: string | undefined, now: Date): string {
    const t = Date.parse(from ?? "");
    if (Number.isNaN(t)) return "-";
    const hours = Math.max(0, Math.floor((now.getTime() - t) / 3_600_000));
    return hours < 24 ? `${hours}h` : `${Math.floor(hours / 24)}d ${hours % 24}h`;
}
