// Golden tests of the three outputs. The expected files are written by hand (or reviewed
// after a deliberate change) and compared exactly: nothing here rewrites them, so any drift fails.
import { describe, it, expect } from "vitest";
import { readFileSync } from "node:fs";
import * as path from "node:path";
import { type AuditReport, auditProject, MARKDOWN_MARKER, renderJson, renderMarkdown, renderText } from "../../audit";
import { stackNameForBranch } from "../../naming";
import { GOLDEN, stackTexts } from "./helpers";

const golden = (name: string) => readFileSync(path.join(GOLDEN, name), "utf8");

// The reporter now reads raw (access diff), backups drop to 3 days (error), the TTL is no
// longer stated (warning), a dev stack is new; the branch is derived on the embedded server.
const report: AuditReport = auditProject(stackTexts(path.join(GOLDEN, "head")), {
    mirror: { stack: stackNameForBranch("feature/reporting"), branch: "feature/reporting" },
    base: { ref: "main", commit: "0123456789abcdef0123456789abcdef01234567", files: stackTexts(path.join(GOLDEN, "base")) },
});

describe("the audit's outputs", () => {
    it("text: for people", () => {
        expect(`${renderText(report).join("\n")}\n`).toBe(golden("report.txt"));
    });

    it("markdown: for a merge-request comment, found again by its marker", () => {
        const md = renderMarkdown(report);
        expect(md[0]).toBe(MARKDOWN_MARKER);
        expect(`${md.join("\n")}\n`).toBe(golden("report.md"));
    });

    it("json: the whole report, keys in a stable order", () => {
        expect(`${renderJson(report)}\n`).toBe(golden("report.json"));
        expect(Object.keys(JSON.parse(renderJson(report)) as object)).toEqual(["files", "findings", "skipped", "mirror", "access", "summary"]);
    });

    it("says clean when there is nothing to report", () => {
        const clean = auditProject(stackTexts(path.join(GOLDEN, "base")), { mirror: { skip: "no current branch" }, base: { skip: "not a git repository" } });
        expect(renderText(clean)).toEqual([
            "dataops audit: Pulumi.prod.yaml",
            "",
            "Validation",
            "  ok",
            "",
            "Policies",
            "  ok",
            "",
            "Mirror",
            "  not applicable: no current branch",
            "",
            "Access diff",
            "  no base to compare with: not a git repository",
            "",
            "audit: clean",
        ]);
        expect(renderMarkdown(clean).slice(0, 2)).toEqual([MARKDOWN_MARKER, "### dataops audit: clean"]);
    });
});
