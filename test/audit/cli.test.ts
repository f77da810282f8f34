// `runAudit` as the CLI calls it: arguments, exit status, and the project's own stacks.
import { describe, it, expect } from "vitest";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { AUDIT_SUMMARY, AUDIT_USAGE, MARKDOWN_MARKER, runAudit } from "../../audit";
import { FIXTURES, ROOT, recordingIo } from "./helpers";

const USAGE_LINE = "Usage: dataops audit [--stack S] [--base REF] [--json | --markdown]";

async function run(root: string, args: string[]) {
    const r = recordingIo(root);
    const code = await runAudit(root, args, r.io);
    return { code, out: r.out, err: r.err };
}

/** A folder that is not a git repository, holding a fixture's files. */
function folderWith(fixtureName: string): string {
    const dir = mkdtempSync(path.join(tmpdir(), "dataops-audit-"));
    cpSync(path.join(FIXTURES, fixtureName), dir, { recursive: true });
    return dir;
}

describe("dataops audit arguments", () => {
    it("documents itself", async () => {
        expect(AUDIT_USAGE.split("\n")[0]).toBe("dataops audit [--stack S] [--base REF] [--json | --markdown]");
        expect(AUDIT_SUMMARY).not.toContain("\n");
        expect(await run(ROOT, ["--help"])).toEqual({ code: 0, out: [AUDIT_USAGE], err: [] });
    });

    for (const [args, message] of [
        [["--json", "--markdown"], "give only one of --json and --markdown"],
        [["--stack", "br x"], '--stack "br x" is not a stack name (letters, digits, _ . -)'],
        [["--base", ""], "--base is empty (give a commit, branch or tag)"],
        [["extra"], "Unexpected argument 'extra'. This command does not take positional arguments"],
    ] as const) {
        it(`GIVEN ${args.join(" ")} THEN a usage error (exit 2)`, async () => {
            expect(await run(ROOT, [...args])).toEqual({ code: 2, out: [], err: [`dataops audit: ${message}`, USAGE_LINE] });
        });
    }

    it("GIVEN an unknown option THEN a usage error (exit 2)", async () => {
        const { code, err } = await run(ROOT, ["--nope"]);
        expect(code).toBe(2);
        expect(err[0]).toMatch(/^dataops audit: Unknown option '--nope'/);
    });

    it("GIVEN --base outside a git repository THEN a usage error (exit 2)", async () => {
        const dir = folderWith("clean");
        try {
            expect(await run(dir, ["--base", "main"])).toEqual({ code: 2, out: [], err: [`dataops audit: --base main: ${dir} is not a git repository`, USAGE_LINE] });
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

describe("dataops audit exit status", () => {
    it("is 1 with findings, and audits every stack file of a folder that is not a repository", async () => {
        const dir = folderWith("prod-protect");
        writeFileSync(path.join(dir, "Pulumi.br-local.yaml"), "config:\n  dataops:warehouse: {engineVersion: \"16.4\", target: docker}\n");
        writeFileSync(path.join(dir, "Pulumi.yaml"), "name: dataops\nruntime: nodejs\n");
        try {
            const { code, out } = await run(dir, ["--stack", "br-local"]);
            expect(code).toBe(1);
            expect(out.filter((l) => /^ {2}(error|warning) /.test(l))).toEqual([
                "  error [validation] Pulumi.br-local.yaml: dataops:warehouse: is set on a branch stack, which mirrors production (change it in Pulumi.prod.yaml through a merge request)",
                "  error [prod-protect] Pulumi.prod.yaml: dataops:warehouse.protection.protect: is false: pulumi destroy would delete production's warehouse and database",
            ]);
            expect(out.at(-1)).toBe("audit: 2 findings (2 errors, 0 warnings)");
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });

    it("is 0 for a clean project", async () => {
        const dir = folderWith("clean");
        try {
            const { code, out } = await run(dir, ["--stack", "br-feature-a"]);
            expect(code).toBe(0);
            expect(out).toContain("Access diff");
            expect(out).toContain(`  no base to compare with: ${dir} is not a git repository`);
            expect(out.at(-1)).toBe("audit: clean");
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});

// The CI step: the project's committed stacks pass the audit.
describe("the project's own committed stacks", () => {
    it("pass the audit for the current branch", async () => {
        const { code, out, err } = await run(ROOT, []);
        expect(err).toEqual([]);
        expect(out.at(-1)).toBe("audit: clean");
        expect(out[0]).toBe("dataops audit: Pulumi.dev.yaml, Pulumi.prod.yaml");
        expect(code).toBe(0);
    });

    it("pass for a branch stack given by name, in every output", async () => {
        for (const format of [[], ["--json"], ["--markdown"]]) expect((await run(ROOT, ["--stack", "br-feature-a", ...format])).code).toBe(0);
        const md = await run(ROOT, ["--stack", "br-feature-a", "--markdown"]);
        expect(md.out.slice(0, 2)).toEqual([MARKDOWN_MARKER, "### dataops audit: clean"]);
        const json = JSON.parse((await run(ROOT, ["--stack", "br-feature-a", "--json"])).out.join("\n")) as { mirror: { status: string; differences: Array<{ explained: boolean }> } };
        expect(json.mirror.status).toBe("derived");
        expect(json.mirror.differences.length).toBeGreaterThan(0);
        expect(json.mirror.differences.every((d) => d.explained)).toBe(true);
    });
});

describe("dataops audit on a broken tree", () => {
    it("GIVEN Pulumi.prod.yaml deleted WHEN audited THEN it is a finding (exit 1), not a clean pass", async () => {
        const dir = folderWith("clean");
        rmSync(path.join(dir, "Pulumi.prod.yaml"));
        try {
            const { code, out } = await run(dir, ["--json", "--stack", "br-x"]);
            expect(code).toBe(1);
            const report = JSON.parse(out.join("\n")) as { findings: Array<{ id: string; file: string; message: string }> };
            expect(report.findings[0]).toMatchObject({ id: "prod-missing", file: "Pulumi.prod.yaml" });
        } finally {
            rmSync(path.join(dir), { recursive: true, force: true });
        }
    });

    it("GIVEN a 5 MB stack file of 100,000 keys WHEN audited THEN it is refused by size, at once, with the file named", async () => {
        const dir = folderWith("clean");
        const keys = Array.from({ length: 100_000 }, (_, i) => `  dataops:key${i}: "${"x".repeat(40)}"`).join("\n");
        writeFileSync(path.join(dir, "Pulumi.dev.yaml"), `config:\n${keys}\n`);
        try {
            const { code, out } = await run(dir, ["--json", "--stack", "br-x"]);
            expect(code).toBe(1);
            const report = JSON.parse(out.join("\n")) as { findings: Array<{ id: string; file: string; message: string }> };
            expect(report.findings.find((f) => f.file === "Pulumi.dev.yaml")?.message).toMatch(/^is \d\.\d MiB; a stack file may be at most 1 MiB/);
        } finally {
            rmSync(dir, { recursive: true, force: true });
        }
    });
});
