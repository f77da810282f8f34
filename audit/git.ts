// What the audit asks git: the tracked stack files, a commit's version of them, and the
// base to diff access against. Every call runs in the project folder; none writes.
import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { StackText } from "./types";
import { isStackFile } from "./report";

type Env = Readonly<Record<string, string | undefined>>;

function git(args: string[], cwd: string): string | undefined {
    try {
        return execFileSync("git", args, { cwd, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"], maxBuffer: 16 * 1024 * 1024 });
    } catch {
        return undefined;
    }
}

export function isGitRepository(root: string): boolean {
    return git(["rev-parse", "--is-inside-work-tree"], root)?.trim() === "true";
}

/**
 * The stack files to audit, from the working tree: those tracked by git (branch stacks'
 * local files are ignored and never committed), or every one when root is not a repository.
 */
export function workingTreeStackFiles(root: string): StackText[] {
    const names = isGitRepository(root)
        ? (git(["ls-files", "--", "Pulumi.*.yaml"], root) ?? "").split("\n").filter((n) => isStackFile(n))
        : readdirSync(root).filter(isStackFile);
    // A tracked file deleted in the working tree is not part of what is being reviewed.
    return names.flatMap((name) => {
        try {
            return [{ name, text: readFileSync(join(root, name), "utf8") }];
        } catch {
            return [];
        }
    });
}

/** The full commit id of a ref, or undefined when it names no commit. */
export function resolveCommit(root: string, ref: string): string | undefined {
    if (ref.startsWith("-")) return undefined;
    return git(["rev-parse", "--verify", "--quiet", "--end-of-options", `${ref}^{commit}`], root)?.trim() || undefined;
}

/** The stack files as they were at a commit; none when the commit did not have them. */
export function stackFilesAt(root: string, commit: string): StackText[] {
    const names = (git(["ls-tree", "--name-only", commit, "--", "."], root) ?? "").split("\n").filter(isStackFile);
    return names.map((name) => ({ name, text: git(["show", `${commit}:./${name}`], root) ?? "" }));
}

/**
 * The default base: the merge request's base in CI (GitLab's diff base, or the
 * target branch on GitHub and GitLab), else the merge base of HEAD with the default
 * branch (origin/HEAD's target, else main, else master). A reason when there is none.
 */
export function defaultBase(root: string, env: Env): { ref: string; commit: string } | { skip: string } {
    if (!isGitRepository(root)) return { skip: `${root} is not a git repository` };
    const head = resolveCommit(root, "HEAD");
    if (!head) return { skip: "the repository has no commit yet" };
    const mrBase = env.CI_MERGE_REQUEST_DIFF_BASE_SHA;
    if (mrBase) {
        const commit = resolveCommit(root, mrBase);
        if (commit) return { ref: "merge request base", commit };
    }
    const target = env.GITHUB_BASE_REF || env.CI_MERGE_REQUEST_TARGET_BRANCH_NAME;
    const originHead = git(["symbolic-ref", "--quiet", "--short", "refs/remotes/origin/HEAD"], root)?.trim();
    const candidates = [...(target ? [`origin/${target}`, target] : []), ...(originHead ? [originHead] : []), "main", "master"];
    const branch = candidates.find((c) => resolveCommit(root, c) !== undefined);
    if (!branch) return { skip: `no default branch found (tried ${candidates.join(", ")}; in a shallow CI clone, fetch it), give --base REF` };
    const commit = git(["merge-base", "HEAD", branch], root)?.trim();
    if (!commit) return { skip: `HEAD and ${branch} have no common commit (a shallow clone? fetch more history), give --base REF` };
    if (commit === head) return { skip: `HEAD is the merge base with ${branch}: nothing to compare (give --base REF to compare with another commit)` };
    return { ref: `merge-base with ${branch}`, commit };
}
