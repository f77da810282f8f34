// The lifecycle's pure rules and argument handling: tags, TTL, prune selection (fake
// clock, fake branch list), the summary, and what is refused before any engine runs.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main, type Io } from "../cli/main";
import { liveBranches, parseSeconds, parseTarget, UsageError } from "../cli/lifecycle";
import { checkUp, Refused, type UpOutcome } from "../lifecycle/environments";
import { age, selectForPrune, type StackInfo, TAG, upTags } from "../lifecycle/policy";
import { SUMMARY_MARKER, summaryMarkdown } from "../lifecycle/summary";

const NOW = new Date("2026-11-22T12:00:00Z");
const id = { branch: "feature/a", commit: "abc123", author: "alice", target: "server", ttl: "72h" };

function io(): Io & { lines: string[] } {
    const lines: string[] = [];
    return { lines, out: (l) => lines.push(l), err: (l) => lines.push(l), env: {}, cwd: "/", now: () => NOW, interactive: false };
}

describe("tags", () => {
    it("GIVEN a first up WHEN tagged THEN created-at is now and expires-at is now + TTL", () => {
        expect(upTags(id, NOW)).toEqual({
            [TAG.kind]: "branch",
            [TAG.branch]: "feature/a",
            [TAG.commit]: "abc123",
            [TAG.author]: "alice",
            [TAG.target]: "server",
            [TAG.createdAt]: "2026-11-22T12:00:00.000Z",
            [TAG.expiresAt]: "2026-11-25T12:00:00.000Z",
        });
    });

    it("GIVEN a later up WHEN tagged THEN created-at is kept and expires-at renewed", () => {
        const later = new Date("2026-11-24T00:00:00Z");
        const tags = upTags(id, later, upTags(id, NOW));
        expect(tags[TAG.createdAt]).toBe("2026-11-22T12:00:00.000Z");
        expect(tags[TAG.expiresAt]).toBe("2026-11-27T00:00:00.000Z");
    });
});

describe("prune selection", () => {
    const stack = (name: string, branch: string, expires: string, extra: Record<string, string> = {}): StackInfo => ({
        name,
        tags: { [TAG.kind]: "branch", [TAG.branch]: branch, [TAG.expiresAt]: expires, ...extra },
    });
    const stacks = [
        stack("br-live", "live", "2026-11-23T00:00:00Z"),
        stack("br-old", "old", "2026-11-22T11:59:59Z"),
        stack("br-gone", "gone", "2026-11-30T00:00:00Z"),
        stack("br-kept", "kept", "2026-11-01T00:00:00Z", { [TAG.keep]: "true" }),
        stack("br-noexpiry", "noexpiry", ""),
        { name: "prod", tags: {} },
        { name: "br-manual", tags: {} },
    ];

    it("GIVEN a fake clock and the remote's branches WHEN selecting THEN expired and gone are destroyed, kept is kept, others untouched", () => {
        const live = new Set(["live", "old", "kept", "noexpiry"]);
        expect(selectForPrune(stacks, NOW, live).map((d) => [d.stack, d.action, d.reasons])).toEqual([
            ["br-gone", "destroy", ["branch-gone"]],
            ["br-kept", "keep", ["expired"]],
            ["br-noexpiry", "destroy", ["expired"]],
            ["br-old", "destroy", ["expired"]],
        ]);
    });

    it("GIVEN no branch list WHEN selecting THEN only expiry counts", () => {
        expect(selectForPrune(stacks, NOW).map((d) => d.stack)).toEqual(["br-kept", "br-noexpiry", "br-old"]);
    });

    it("GIVEN a kept stack WHEN listed THEN its detail says why it was kept", () => {
        const kept = selectForPrune(stacks, NOW).find((d) => d.stack === "br-kept");
        expect(kept?.detail).toBe("expired 2026-11-01T00:00:00Z (kept: dataops:keep=true)");
    });

    it("GIVEN a branch file WHEN read THEN it is the live set", () => {
        const dir = mkdtempSync(join(tmpdir(), "dataops-"));
        writeFileSync(join(dir, "branches.txt"), "main\n feature/a \n\n");
        expect(liveBranches({ branchesFrom: join(dir, "branches.txt") }, dir)).toEqual(new Set(["main", "feature/a"]));
        expect(() => liveBranches({ branchesFrom: join(dir, "missing.txt") }, dir)).toThrow(`--branches-from: no such file "${join(dir, "missing.txt")}"`);
        expect(liveBranches({}, dir)).toBeUndefined();
    });

    it("GIVEN times WHEN shown THEN ages read in hours and days", () => {
        expect(age("2026-11-22T09:00:00Z", NOW)).toBe("3h");
        expect(age("2026-11-20T08:00:00Z", NOW)).toBe("2d 4h");
        expect(age(undefined, NOW)).toBe("-");
    });
});

describe("refused before anything changes", () => {
    it("GIVEN a target the policy does not allow WHEN up is checked THEN it is refused, naming the allowed ones", () => {
        const dir = mkdtempSync(join(tmpdir(), "dataops-"));
        writeFileSync(join(dir, "Pulumi.prod.yaml"), "config:\n  dataops:warehouse:\n    engineVersion: '16.4'\n    target: server\n    server: {host: db}\n  dataops:branches:\n    allowedTargets: [server]\n");
        expect(() => checkUp(dir, { branch: "x", target: "docker" })).toThrow(Refused);
        expect(() => checkUp(dir, { branch: "x", target: "docker" })).toThrow("--target docker is not allowed by production's branches policy (allowed: server)");
        expect(checkUp(dir, { branch: "x" }).stack).toBe("br-x");
    });

    it("GIVEN bad arguments WHEN parsed THEN each names the flag, what is allowed and what was given", () => {
        expect(() => parseTarget("gcp")).toThrow(new UsageError('--target: allowed aws | docker | server, given "gcp"'));
        expect(() => parseSeconds("soon", 600, "--lock-timeout")).toThrow('--lock-timeout: a whole number of seconds from 0 to 86400, given "soon"');
        expect(parseSeconds(undefined, 600, "--lock-timeout")).toBe(600);
    });

    it.each([
        [["up", "--target", "gcp", "--branch", "x"], 'dataops up: --target: allowed aws | docker | server, given "gcp"'],
        [["up", "--lock-timeout", "soon", "--branch", "x"], 'dataops up: --lock-timeout: a whole number of seconds from 0 to 86400, given "soon"'],
        [["up", "--branch", ""], "dataops up: --branch is empty"],
        [["destroy", "--branch", "feature/a"], "dataops destroy: refused: destroying br-feature-a_951d42dc needs --yes in a non-interactive shell"],
        [["prune", "--remote", "origin", "--branches-from", "x"], "dataops prune: give only one of --remote and --branches-from"],
        [["ls", "extra"], "dataops ls: expected at most 0 argument(s), given 1: extra"],
    ])("GIVEN %j WHEN run THEN exit 2 with: %s", async (argv, message) => {
        const i = io();
        expect(await main(argv, i)).toBe(2);
        expect(i.lines[0]).toBe(message);
    });
});

describe("merge-request summary", () => {
    it("GIVEN an up WHEN summarised THEN it carries versions, changes, connections without passwords, expiry and how to destroy", () => {
        const outcome: UpOutcome = {
            stack: "br-feature-a_951d42dc",
            changes: { create: 3, same: 2 },
            recovered: false,
            tags: upTags(id, NOW),
            summary: {
                stack: "br-feature-a_951d42dc", kind: "branch", branch: "feature/a", ttl: "72h", target: "server", engineVersion: "16.4", serverVersion: "16.14", data: null,
                host: "localhost", port: 54329, sslMode: "disable", database: "br_feature_a_8221f6cb_analytics", schemas: ["staging"],
                roles: {}, users: { alice: { login: "br_feature_a_8221f6cb_alice", url: "postgresql://br_feature_a_8221f6cb_alice@localhost:54329/br_feature_a_8221f6cb_analytics", roles: ["transformer"], writes: true } },
                loaders: {}, build: { projectVersion: "0.1.0", commit: "0123456789abcdef" },
            },
        };
        const md = summaryMarkdown(outcome);
        expect(md.startsWith(SUMMARY_MARKER)).toBe(true);
        expect(md).toContain("| This update | 3 create |");
        expect(md).toContain("| Built from | dataops-environments 0.1.0, commit `0123456789ab` |");
        expect(md).toContain("| Expires | 2026-11-25T12:00:00.000Z (renewed by every push; TTL 72h) |");
        expect(md).toContain("alice        postgresql://br_feature_a_8221f6cb_alice@localhost:54329/br_feature_a_8221f6cb_analytics");
        expect(md).toContain("npx dataops destroy --branch feature/a --yes");
        // A hostile branch name is one quoted shell word: pasting the hint runs nothing else.
        const hostile = summaryMarkdown({ ...outcome, summary: { ...outcome.summary, branch: "q'$(touch x)'q" } });
        expect(hostile).toContain("npx dataops destroy --branch 'q'\\''$(touch x)'\\''q' --yes");
        expect(md).not.toMatch(/password=|:[^@/\s]+@localhost/);
        expect(md).toContain("| Data | empty (branches.data: empty) |");
        // A branch copied from another database says from what, when, and how much.
        const sampled = summaryMarkdown({
            ...outcome,
            summary: { ...outcome.summary, data: { mode: "sample", from: "analytics_nightly", at: "2026-11-23T09:00:00.000Z", tables: 10, rows: 708, rowsEstimated: false } },
        });
        expect(sampled).toContain("| Data | sample of analytics_nightly at 2026-11-23T09:00:00.000Z: 10 tables, 708 rows (sampled raw tables) |");
        const cloned = summaryMarkdown({
            ...outcome,
            summary: { ...outcome.summary, data: { mode: "clone", from: "prod_analytics", cluster: "prod-warehouse", at: "2026-11-23T09:00:00.000Z", tables: 10, rows: 1_200_000, rowsEstimated: true } },
        });
        expect(cloned).toContain("| Data | clone of prod_analytics in a clone of cluster prod-warehouse at 2026-11-23T09:00:00.000Z: 10 tables, about 1200000 rows |");
    });
});
