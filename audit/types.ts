// The audit's report, as data: every renderer (text, JSON, Markdown) and every test
// reads this one shape.

export type Severity = "error" | "warning";

export interface Finding {
    /** Stable id of the rule, e.g. `prod-protect`; see FINDING_IDS. */
    readonly id: string;
    readonly severity: Severity;
    /** The stack file, e.g. `Pulumi.prod.yaml`, or `stack br-…` for the mirror. */
    readonly file: string;
    /** Key path as in config errors, e.g. `dataops:warehouse.protection.protect`. */
    readonly key: string;
    readonly message: string;
    /** One line: what to change. */
    readonly fix: string;
}

/** A stack file's text, as committed (or in the working tree). */
export interface StackText {
    /** File name, e.g. `Pulumi.prod.yaml`. */
    readonly name: string;
    readonly text: string;
}

export interface MirrorDifference {
    readonly path: string;
    /** Production's value; null when production has none. */
    readonly production: unknown;
    /** The branch's value; null when the branch has none. */
    readonly branch: unknown;
    readonly reason: string;
    /** Whether production's `branches` policy or a documented disposable-environment rule allows it. */
    readonly explained: boolean;
}

export type MirrorSection =
    | {
          readonly status: "derived";
          readonly stack: string;
          readonly branch?: string;
          /** Where the branch's server came from, when it runs on the server target. */
          readonly server?: string;
          readonly differences: readonly MirrorDifference[];
      }
    | { readonly status: "not-applicable"; readonly stack?: string; readonly reason: string };

export interface StackAccessDiff {
    readonly file: string;
    /** Lines without their sign, e.g. `reporter: SELECT on raw_salesforce`. */
    readonly added: readonly string[];
    readonly removed: readonly string[];
    /** Set when a side's config could not be read; the diff is then empty. */
    readonly note?: string;
    /** The engine version change, when there is one: `warehouse: 16.4 → 17.2, major`. */
    readonly version?: string;
}

export type AccessSection =
    | { readonly status: "compared"; readonly base: string; readonly commit: string; readonly stacks: readonly StackAccessDiff[] }
    | { readonly status: "no-base"; readonly reason: string };

export interface AuditReport {
    /** The stack files audited, sorted. */
    readonly files: readonly string[];
    readonly findings: readonly Finding[];
    /** Files whose policies were not checked, and why (their validation errors are findings). */
    readonly skipped: ReadonlyArray<{ readonly file: string; readonly reason: string }>;
    readonly mirror: MirrorSection;
    readonly access: AccessSection;
    readonly summary: { readonly findings: number; readonly errors: number; readonly warnings: number };
}

export const EXIT = { clean: 0, findings: 1, usage: 2 } as const;
