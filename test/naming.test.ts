import { describe, it, expect } from "vitest";
import fc from "fast-check";
import {
    PG_IDENTIFIER_MAX,
    PREFIX_MAX,
    environmentNames,
    environmentPrefix,
    shortHash,
    stackNameForBranch,
} from "../naming";

// Pulumi's rule for a stack name.
const STACK_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const PREFIX = /^[a-z][a-z0-9_]*$/;
// A branch name that is already its own slug: the only kind that gets no hash.
const PLAIN_SLUG = /^[a-z0-9]+(?:-[a-z0-9]+)*$/;

const bytes = (s: string) => Buffer.byteLength(s, "utf8");

// Branch names as they come: ASCII, any Unicode (astral planes and combining marks
// included), very long, only punctuation, and a tiny alphabet whose strings often
// share a slug (the case where a careless slug would collide).
const branch = fc.oneof(
    fc.string({ minLength: 1, maxLength: 40 }),
    fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 }),
    fc.string({ unit: "binary", minLength: 1, maxLength: 40 }),
    fc.string({ unit: "grapheme-ascii", minLength: 150, maxLength: 500 }),
    fc.string({ unit: fc.constantFrom("/", "-", "_", ".", " ", "!", "#", "~", "'", ";"), minLength: 1, maxLength: 20 }),
    fc.string({ unit: fc.constantFrom("a", "A", "b", "1", "-", "/", "_", " ", "."), minLength: 1, maxLength: 8 }),
    fc.stringMatching(/^[a-z0-9]+(-[a-z0-9]+)*$/).filter((s) => s.length <= 120),
);
const twoBranches = fc.tuple(branch, branch).filter(([a, b]) => a !== b);

describe("stackNameForBranch", () => {
    it("gives the same stack for the same branch every time", () => {
        fc.assert(fc.property(branch, (b) => stackNameForBranch(b) === stackNameForBranch(b)));
    });

    it("gives a valid Pulumi stack name starting with br-", () => {
        fc.assert(
            fc.property(branch, (b) => {
                const stack = stackNameForBranch(b);
                expect(stack).toMatch(STACK_NAME);
                expect(stack.startsWith("br-")).toBe(true);
            }),
            { numRuns: 500 },
        );
    });

    it("never gives two different branches the same stack", () => {
        fc.assert(
            fc.property(twoBranches, ([a, b]) => stackNameForBranch(a) !== stackNameForBranch(b)),
            { numRuns: 2000 },
        );
    });

    it.each([
        ["feature/a", "feature-a"],
        ["Feature-A", "feature-a"],
        ["feature_a", "feature-a"],
        ["feature--a", "feature-a"],
        ["-feature-a-", "feature-a"],
        [`${"p".repeat(200)}a`, `${"p".repeat(200)}b`],
        [`${"p".repeat(200)}/a`, `${"p".repeat(200)}-a`],
    ])("keeps %s and %s apart", (a, b) => {
        // GIVEN two branches with the same slug (or the same first 200 characters)
        // WHEN each gets its stack
        // THEN the stacks differ
        expect(stackNameForBranch(a)).not.toBe(stackNameForBranch(b));
    });

    it("adds a hash exactly when the branch is not its own slug or is too long", () => {
        fc.assert(
            fc.property(branch, (b) => {
                const hashed = stackNameForBranch(b).endsWith(`_${shortHash(b)}`);
                expect(hashed).toBe(!PLAIN_SLUG.test(b) || b.length > 97);
            }),
            { numRuns: 500 },
        );
    });

    it.each([
        // branch, stack
        ["feature-a", "br-feature-a"],
        ["a", "br-a"],
        ["jira-12-new-loader", "br-jira-12-new-loader"],
        ["x".repeat(97), `br-${"x".repeat(97)}`],
    ])("keeps the unchanged slug %s as it is", (b, stack) => {
        expect(stackNameForBranch(b)).toBe(stack);
    });

    it.each([
        // branch, slug part before the hash
        ["feature/a", "feature-a"],
        ["Feature-A", "feature-a"],
        ["feature/JIRA-12_New loader", "feature-jira-12-new-loader"],
        ["-a", "a"],
        ["///", "branch"],
        ["K", "k"], // Kelvin sign: lower-cases to an ASCII k, so the slug changed
        ["x".repeat(98), "x".repeat(88)],
        [`${"p".repeat(87)}-${"q".repeat(20)}`, "p".repeat(87)], // cut at 88, trailing dash dropped
    ])("hashes %s, whose slug changed or was cut", (b, slug) => {
        expect(stackNameForBranch(b)).toBe(`br-${slug}_${shortHash(b)}`);
    });

    it("refuses an empty branch, naming the argument", () => {
        expect(() => stackNameForBranch("")).toThrow("branch: an empty branch name has no stack (give a branch name)");
    });
});

describe("environmentPrefix", () => {
    it("keeps prod and dev as they are", () => {
        expect(environmentPrefix("prod")).toBe("prod");
        expect(environmentPrefix("dev")).toBe("dev");
    });

    it("gives a branch a short lowercase identifier", () => {
        fc.assert(
            fc.property(branch, (b) => {
                const prefix = environmentPrefix(stackNameForBranch(b));
                expect(prefix.length).toBeLessThanOrEqual(PREFIX_MAX);
                expect(prefix).toMatch(PREFIX);
            }),
            { numRuns: 500 },
        );
    });

    it("never gives two branches the same prefix, nor one of prod's or dev's", () => {
        fc.assert(
            fc.property(twoBranches, ([a, b]) => {
                const pa = environmentPrefix(stackNameForBranch(a));
                const pb = environmentPrefix(stackNameForBranch(b));
                expect(pa).not.toBe(pb);
                expect(["prod", "dev"]).not.toContain(pa);
            }),
            { numRuns: 2000 },
        );
    });

    it("gives the example branch its prefix", () => {
        // GIVEN feature/a's stack  WHEN prefixed  THEN slug cut to 12 plus the stack's hash
        const stack = stackNameForBranch("feature/a");
        expect(environmentPrefix(stack)).toBe(`br_feature_a_${shortHash(stack)}`);
    });
});

describe("environmentNames", () => {
    const database = "d".repeat(40);
    const role = "r".repeat(30);

    it("fits a 40-character database and 30-character roles within 63 bytes for any branch", () => {
        fc.assert(
            fc.property(branch, (b) => {
                const names = environmentNames(environmentPrefix(stackNameForBranch(b)), database);
                for (const n of [names.database, names.ownerRole, names.role(role), names.loaderRole(role), names.user(role)])
                    expect(bytes(n)).toBeLessThanOrEqual(PG_IDENTIFIER_MAX);
            }),
            { numRuns: 300 },
        );
    });

    it("names production's objects after its prefix", () => {
        const names = environmentNames("prod", "analytics");
        expect([names.database, names.ownerRole, names.role("reporter"), names.loaderRole("stripe"), names.user("alice")]).toEqual([
            "prod_analytics",
            "prod_owner",
            "prod_reporter",
            "prod_loader_stripe",
            "prod_alice",
        ]);
    });

    it("accepts exactly 63 bytes with the longest prefix", () => {
        const names = environmentNames("p".repeat(PREFIX_MAX), database);
        expect(names.database).toBe(`${"p".repeat(22)}_${database}`);
        expect(bytes(names.database)).toBe(63);
    });

    it("refuses a database name over 63 bytes", () => {
        // GIVEN a 22-character prefix and a 41-character database (64 bytes)
        // WHEN the names are made  THEN it throws with the name and the limit
        expect(() => environmentNames("p".repeat(22), "a".repeat(41))).toThrow(
            `name ${"p".repeat(22)}_${"a".repeat(41)} is longer than PostgreSQL's 63 bytes`,
        );
    });

    it("counts bytes, not characters", () => {
        // 1 + 1 + 31 two-byte characters = 33 characters but 64 bytes
        const db = "é".repeat(31);
        expect(() => environmentNames("p", db)).toThrow(`name p_${db} is longer than PostgreSQL's 63 bytes`);
    });

    it("refuses a role or loader role over 63 bytes when it is asked for", () => {
        const names = environmentNames("p".repeat(22), "analytics");
        expect(() => names.role("r".repeat(41))).toThrow(`name ${"p".repeat(22)}_${"r".repeat(41)} is longer than PostgreSQL's 63 bytes`);
        expect(() => names.loaderRole("l".repeat(34))).toThrow(
            `name ${"p".repeat(22)}_loader_${"l".repeat(34)} is longer than PostgreSQL's 63 bytes`,
        );
    });
});
