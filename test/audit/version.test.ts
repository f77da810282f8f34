// A warehouse version change in a merge request, as the audit shows it against the base:
// listed in the access diff, a major change without acknowledgement and a rehearsal that
// production's policy does not allow are findings.
import { describe, expect, it } from "vitest";
import { auditProject, renderMarkdown, renderText } from "../../audit";
import { fixture } from "./helpers";

const clean = fixture("clean");
const prodText = clean.find((f) => f.name === "Pulumi.prod.yaml")!.text;

/** The clean production file with a pin, and optionally the keys a version change asks for. */
function prod(version: string, opts: { allowMajor?: boolean; allowAhead?: boolean } = {}): string {
    let t = prodText.replace('engineVersion: "16.4"', `engineVersion: "${version}"`);
    if (opts.allowMajor) t = t.replace("    protection:\n", "    upgrade:\n      allowMajor: true\n    protection:\n");
    if (opts.allowAhead) t = t.replace("  dataops:branches:\n", "  dataops:branches:\n    allowVersionAhead: true\n");
    return t;
}

function audit(head: string, base: string) {
    return auditProject([{ name: "Pulumi.prod.yaml", text: head }], {
        mirror: { skip: "not under test" },
        base: { ref: "main", commit: "0123456789abcdef0123456789abcdef01234567", files: [{ name: "Pulumi.prod.yaml", text: base }] },
    });
}

const ids = (r: ReturnType<typeof audit>) => r.findings.map((f) => [f.id, f.key]);

describe("a version change in review", () => {
    it("GIVEN a major upgrade without acknowledgement, from a base that allows no rehearsal THEN the diff shows it and both are findings", () => {
        const r = audit(prod("17.2"), prod("16.4"));
        expect(r.access.status === "compared" && r.access.stacks[0].version).toBe("warehouse: 16.4 → 17.2, major");
        expect(renderText(r)).toContain("    ~ warehouse: 16.4 → 17.2, major");
        expect(renderMarkdown(r)).toContain("! warehouse: 16.4 → 17.2, major");
        expect(r.findings.find((f) => f.id === "version-major")).toEqual({
            id: "version-major",
            severity: "error",
            file: "Pulumi.prod.yaml",
            key: "dataops:warehouse.engineVersion",
            message: "changes PostgreSQL 16.4 → 17.2, major without dataops:warehouse.upgrade.allowMajor: true (a major upgrade rewrites the data files and cannot be undone in place)",
            fix: "set dataops:warehouse.upgrade.allowMajor: true in this merge request, after the branch environment ran the new major (dbt build, loaders)",
        });
        expect(r.findings.find((f) => f.id === "version-ahead")?.message).toBe(
            "pins PostgreSQL 17.2, ahead of production's 16.4: this branch's environment would run it first, which production's policy at main does not allow (branches.allowVersionAhead is false)",
        );
    });

    it("GIVEN the acknowledgement and a base that allows rehearsals THEN the change is listed and nothing is found", () => {
        const r = audit(prod("17.2", { allowMajor: true, allowAhead: true }), prod("16.4", { allowAhead: true }));
        expect(ids(r)).toEqual([]);
        expect(r.access.status === "compared" && r.access.stacks[0].version).toBe("warehouse: 16.4 → 17.2, major");
    });

    it("GIVEN the policy allowing rehearsals only in the head THEN the rehearsal is still refused: production's policy at the base decides", () => {
        expect(ids(audit(prod("17.2", { allowMajor: true, allowAhead: true }), prod("16.4")))).toEqual([["version-ahead", "dataops:warehouse.engineVersion"]]);
    });

    it("GIVEN a minor bump where rehearsals are allowed THEN it is listed, with no finding; a minor downgrade says so", () => {
        const bump = audit(prod("16.6", { allowAhead: true }), prod("16.4", { allowAhead: true }));
        expect(ids(bump)).toEqual([]);
        expect(bump.access.status === "compared" && bump.access.stacks[0].version).toBe("warehouse: 16.4 → 16.6, minor");
        const down = audit(prod("16.2"), prod("16.4"));
        expect(ids(down)).toEqual([]);
        expect(down.access.status === "compared" && down.access.stacks[0].version).toBe("warehouse: 16.4 → 16.2, minor (a downgrade)");
    });

    it("GIVEN no version change THEN the diff has no version line", () => {
        const r = audit(prod("16.4"), prod("16.4"));
        expect(r.access.status === "compared" && r.access.stacks[0].version).toBeUndefined();
        expect(ids(r)).toEqual([]);
    });
});
