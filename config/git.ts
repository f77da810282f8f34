// Where the branch and commit come from: CI variables first (GitLab, GitHub), then git.
import { execFileSync } from "node:child_process";

type Env = Readonly<Record<string, string | undefined>>;

// Merge-request / pull-request pipelines name the source branch in their own variable;
// it must win over the ref, which there is a merge ref (GitHub) or the target.
const BRANCH_VARIABLES = ["DATAOPS_BRANCH", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "CI_COMMIT_BRANCH", "CI_COMMIT_REF_NAME", "GITHUB_HEAD_REF", "GITHUB_REF_NAME"];
const COMMIT_VARIABLES = ["DATAOPS_COMMIT", "CI_COMMIT_SHA", "GITHUB_SHA"];

function git(args: string[], cwd: string): string | undefined {
    try {
        return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim() || undefined;
    } catch {
        return undefined;
    }
}

export function currentBranch(env: Env, cwd: string = process.cwd()): string | undefined {
    for (const v of BRANCH_VARIABLES) if (env[v]) return env[v];
    const branch = git(["rev-parse", "--abbrev-ref", "HEAD"], cwd);
    // A detached HEAD has no branch.
    return branch === "HEAD" ? undefined : branch;
}

export function currentCommit(env: Env, cwd: string = process.cwd()): string {
    for (const v of COMMIT_VARIABLES) if (env[v]) return env[v]!;
    return git(["rev-parse", "HEAD"], cwd) ?? "unknown";
}

export const BRANCH_SOURCES = BRANCH_VARIABLES;
