// The access diff: effective privileges per role and schema from the config at two
// commits, and exactly what a change adds or removes.
import { describe, it, expect, beforeAll, afterAll } from "vitest";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { type AuditReport, diffAccess, privilegeLines, runAudit } from "../../audit";
import { parseConfig } from "../../config/environment";
import { parseStackFile } from "../../config/stackFiles";
import { FIXTURES, recordingIo } from "./helpers";

const CLEAN = readFileSync(path.join(FIXTURES, "clean", "Pulumi.prod.yaml"), "utf8");
const configOf = (text: string) => parseConfig(parseStackFile(text).values, "Pulumi.prod.yaml");
const REPORTER_READS_RAW = CLEAN.replace("reporter:\n        read:\n          - marts", 'reporter:\n        read:\n          - marts\n          - "raw_*"');
const TRANSFORMER_READS_MARTS = REPORTER_READS_RAW.replace(
    'read:\n          - raw_*\n        write:\n          - staging\n          - marts',
    "read:\n          - raw_*\n          - marts\n        write:\n          - staging",
);

describe("privileges of a config", () => {
    it("lists what each role, loader and user holds, as the components grant it", () => {
        expect(privilegeLines(configOf(CLEAN))).toEqual([
            "loader_salesforce: CONNECT, TEMPORARY on database",
            "loader_salesforce: CREATE, USAGE on schema raw_salesforce",
            "loader_stripe: CONNECT, TEMPORARY on database",
            "loader_stripe: CREATE, USAGE on schema raw_stripe",
            "reporter: CONNECT on database",
            "reporter: USAGE on schema marts",
            "reporter: SELECT on marts",
            // Writers stage work in temporary tables (Singer targets, dbt incremental models); readers do not.
            "transformer: CONNECT, TEMPORARY on database",
            "transformer: CREATE, USAGE on schema marts",
            "transformer: SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER on marts",
            "transformer: USAGE, SELECT, UPDATE on sequences in marts",
            "transformer: USAGE on schema raw_salesforce",
            "transformer: SELECT on raw_salesforce",
            "transformer: USAGE on schema raw_stripe",
            "transformer: SELECT on raw_stripe",
            "transformer: CREATE, USAGE on schema staging",
            "transformer: SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER on staging",
            "transformer: USAGE, SELECT, UPDATE on sequences in staging",
            "user alice: member of transformer",
        ]);
    });

    it("shows a write turned into a read as the privileges removed, not as a new grant", () => {
        expect(diffAccess(configOf(REPORTER_READS_RAW), configOf(TRANSFORMER_READS_MARTS))).toEqual({
            added: [],
            removed: [
                "transformer: CREATE on schema marts",
                "transformer: INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER on marts",
                "transformer: USAGE, SELECT, UPDATE on sequences in marts",
            ],
        });
    });

    it("treats a stack missing on one side as granting nothing", () => {
        expect(diffAccess(configOf(CLEAN), undefined).added).toEqual([]);
        expect(diffAccess(undefined, configOf(CLEAN)).added).toEqual(privilegeLines(configOf(CLEAN)));
    });
});

describe("the access diff of two commits of a git repository", () => {
    let repo: string;
    const git = (...args: string[]) => execFileSync("git", args, { cwd: repo, encoding: "utf8" }).trim();
    const commit = (text: string, message: string) => {
        writeFileSync(path.join(repo, "Pulumi.prod.yaml"), text);
        git("add", "Pulumi.prod.yaml");
        git("commit", "-q", "-m", message);
        return git("rev-parse", "HEAD");
    };
    let first: string;

    beforeAll(() => {
        repo = mkdtempSync(path.join(tmpdir(), "dataops-audit-"));
        git("init", "-q", "-b", "main");
        git("config", "user.email", "audit@example.com");
        git("config", "user.name", "audit test");
        git("config", "commit.gpgsign", "false");
        first = commit(CLEAN, "production");
        git("checkout", "-q", "-b", "feature/reporting");
        commit(REPORTER_READS_RAW, "the reporter reads raw");
        // A branch stack's local file is never committed, so it is never audited.
        writeFileSync(path.join(repo, "Pulumi.br-feature-reporting_0ed42080.yaml"), "config:\n  dataops:warehouse: {not: valid}\n");
    });
    afterAll(() => rmSync(repo, { recursive: true, force: true }));

    async function audit(args: string[]): Promise<{ code: number; report: AuditReport; err: string[] }> {
        const r = recordingIo(repo);
        const code = await runAudit(repo, [...args, "--json"], r.io);
        return { code, report: JSON.parse(r.out.join("\n")) as AuditReport, err: r.err };
    }

    it("GIVEN --base HEAD~1 THEN it lists exactly the privileges the commit adds", async () => {
        const { code, report, err } = await audit(["--base", "HEAD~1"]);
        expect([code, err]).toEqual([0, []]);
        expect(report.files).toEqual(["Pulumi.prod.yaml"]);
        expect(report.access).toEqual({
            status: "compared",
            base: "HEAD~1",
            commit: first,
            stacks: [
                {
                    file: "Pulumi.prod.yaml",
                    added: ["reporter: USAGE on schema raw_salesforce", "reporter: SELECT on raw_salesforce", "reporter: USAGE on schema raw_stripe", "reporter: SELECT on raw_stripe"],
                    removed: [],
                },
            ],
        });
    });

    it("prints them as + and - lines", async () => {
        const r = recordingIo(repo);
        await runAudit(repo, ["--base", "HEAD~1"], r.io);
        const at = r.out.indexOf(`Access diff (base HEAD~1 @ ${first.slice(0, 7)})`);
        expect(r.out.slice(at + 1, at + 6)).toEqual([
            "  Pulumi.prod.yaml",
            "    + reporter: USAGE on schema raw_salesforce",
            "    + reporter: SELECT on raw_salesforce",
            "    + reporter: USAGE on schema raw_stripe",
            "    + reporter: SELECT on raw_stripe",
        ]);
    });

    it("compares the working tree, and takes the merge base with main by default", async () => {
        writeFileSync(path.join(repo, "Pulumi.prod.yaml"), TRANSFORMER_READS_MARTS);
        try {
            const { report } = await audit([]);
            expect(report.access).toMatchObject({ status: "compared", base: "merge-base with main", commit: first });
            if (report.access.status !== "compared") throw new Error("not compared");
            expect(report.access.stacks[0].removed).toEqual([
                "transformer: CREATE on schema marts",
                "transformer: INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER on marts",
                "transformer: USAGE, SELECT, UPDATE on sequences in marts",
            ]);
            expect(report.mirror).toMatchObject({ status: "derived", stack: "br-feature-reporting_0ed42080", branch: "feature/reporting" });
        } finally {
            git("checkout", "-q", "--", "Pulumi.prod.yaml");
        }
    });

    it("says there is no base on the default branch itself", async () => {
        git("checkout", "-q", "main");
        try {
            const { code, report } = await audit([]);
            expect(code).toBe(0);
            expect(report.access).toEqual({ status: "no-base", reason: "HEAD is the merge base with main: nothing to compare (give --base REF to compare with another commit)" });
        } finally {
            git("checkout", "-q", "feature/reporting");
        }
    });

    it("refuses a base that does not exist (exit 2)", async () => {
        const r = recordingIo(repo);
        expect(await runAudit(repo, ["--base", "no-such-branch"], r.io)).toBe(2);
        expect(r.err).toEqual(["dataops audit: --base no-such-branch: no such commit, branch or tag", "Usage: dataops audit [--stack S] [--base REF] [--json | --markdown]"]);
        expect(r.out).toEqual([]);
    });
});
