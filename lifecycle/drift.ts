// `dataops drift`: what differs between an environment as its last update left it and the
// server as it is now (a grant added or revoked by hand, a role changed, a schema dropped).
// `sql` engine: the catalog the last update applied, compared with two catalog queries,
// object by object. `provider` engine: the engine's refresh preview, resource by resource.
import type { EngineEvent } from "@pulumi/pulumi/automation";
import type { Catalog, Difference } from "../components/catalog";
import { drift } from "../components/catalogSql";
import type { AdminConnection } from "../components/generated";
import { type LocalContext } from "../local/workspace";
import { stackNameForBranch } from "../naming";
import { shellQuote } from "./connection";
import { environmentStack, Refused } from "./environments";

export const CATALOG_TYPE = "pulumi-nodejs:dynamic/dataops:SqlCatalog";

export interface DriftReport {
    readonly stack: string;
    readonly branch: string;
    readonly engine: "sql" | "provider";
    readonly differences: readonly Difference[];
}

interface StateResource {
    type: string;
    urn: string;
    outputs?: Record<string, unknown>;
}

export async function environmentDrift(ctx: LocalContext, branch: string): Promise<DriftReport> {
    const name = stackNameForBranch(branch);
    const stack = await environmentStack(ctx, branch);
    const resources = ((await stack.exportStack()).deployment as { resources?: StateResource[] } | undefined)?.resources ?? [];
    const catalog = resources.find((r) => r.type === CATALOG_TYPE);
    if (catalog) {
        const outputs = await stack.outputs();
        const admin = outputs.adminConnection?.value as AdminConnection | undefined;
        const declared = catalog.outputs?.catalog as Catalog | undefined;
        if (!admin || !declared) throw new Refused(`${name} has no complete update yet; run npx dataops up --branch ${shellQuote(branch)}`);
        return { stack: name, branch, engine: "sql", differences: await drift(admin, declared) };
    }
    if (resources.some((r) => r.type.startsWith("pulumi-nodejs:dynamic/dataops:Sql")))
        throw new Refused(`${name} was made by an older dataops-environments; run npx dataops up --branch ${shellQuote(branch)} once, then drift can read it`);
    if (!resources.some((r) => r.type.startsWith("postgresql:"))) throw new Refused(`${name} has no objects yet; run npx dataops up --branch ${shellQuote(branch)}`);
    // The provider engine: each resource the refresh would change is one difference.
    const differences: Difference[] = [];
    await stack.previewRefresh({
        color: "never",
        onEvent: (e: EngineEvent) => {
            const m = e.resourcePreEvent?.metadata;
            if (!m || m.type === "pulumi:pulumi:Stack" || m.type.startsWith("pulumi:providers:")) return;
            if (m.op === "delete" || m.op === "discard") differences.push({ object: resourceName(m.urn), expected: "exists", actual: "missing" });
            else if ((m.diffs ?? []).length > 0 || m.op === "update") differences.push({ object: resourceName(m.urn), expected: "as last applied", actual: `changed: ${(m.diffs ?? []).join(", ") || "properties"}` });
        },
    });
    return { stack: name, branch, engine: "provider", differences };
}

function resourceName(urn: string): string {
    const parts = urn.split("::");
    return `${parts[2]?.split("$").pop() ?? "resource"} ${parts[3] ?? urn}`;
}

export function driftText(r: DriftReport): string[] {
    if (r.differences.length === 0) return [`${r.stack}: no drift (the server is as the last update left it; ${r.engine} engine)`];
    return [
        `${r.stack}: ${r.differences.length} drifted (${r.engine} engine)`,
        ...r.differences.map((d) => `  ${d.object}${d.role ? `, for ${d.role}` : ""}: expected ${d.expected}, found ${d.actual}`),
        `Repair: npx dataops up --refresh --branch ${shellQuote(r.branch)}`,
    ];
}

export function driftMarkdown(r: DriftReport): string {
    const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");
    if (r.differences.length === 0) return `### Drift: none\n\n\`${r.stack}\` is as its last update left it (${r.engine} engine).\n`;
    return [
        `### Drift: ${r.differences.length} object${r.differences.length === 1 ? "" : "s"} changed outside the pipeline`,
        "",
        `\`${r.stack}\` (${r.engine} engine). Repair with \`npx dataops up --refresh --branch ${cell(shellQuote(r.branch))}\`.`,
        "",
        "| object | role | expected | found |",
        "| --- | --- | --- | --- |",
        ...r.differences.map((d) => `| ${cell(d.object)} | ${cell(d.role ?? "")} | ${cell(d.expected)} | ${cell(d.actual)} |`),
        "",
    ].join("\n");
}
