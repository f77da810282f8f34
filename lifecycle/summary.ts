// The Markdown an `up` leaves for a merge-request or pull-request comment. No secrets:
// connection strings carry no password, and it says how to get one.
import type { UpOutcome } from "./environments";
import { shellQuote } from "./connection";
import { TAG } from "./policy";
import type { Provenance } from "../components/catalog";

/** "clone of prod_analytics at 2026-…: 12 tables, about 3,400 rows": where a branch's data came from. */
export function provenanceText(p: Provenance): string {
    const source = p.cluster ? `${p.from} in a clone of cluster ${p.cluster}` : p.from;
    const sample = p.mode === "sample" ? " (sampled raw tables)" : p.mode === "schema" ? " (structure only)" : "";
    return `${p.mode} of ${source} at ${p.at}: ${p.tables} tables, ${p.rowsEstimated ? "about " : ""}${p.rows} rows${sample}`;
}

export const SUMMARY_MARKER = "<!-- dataops-summary -->";

export function summaryMarkdown(o: UpOutcome): string {
    const s = o.summary;
    const changes = Object.entries(o.changes).filter(([op]) => op !== "same");
    const changed = changes.length === 0 ? "no changes" : changes.map(([op, n]) => `${n} ${op}`).join(", ");
    const lines = [
        SUMMARY_MARKER,
        `### Branch environment \`${s.stack}\``,
        "",
        `| | |`,
        `| --- | --- |`,
        `| Branch | \`${s.branch ?? "-"}\` |`,
        `| Target | ${s.target}, PostgreSQL ${s.serverVersion ? `${s.serverVersion} (pinned ${s.engineVersion})` : `${s.engineVersion} (pinned)`} on \`${s.host}:${s.port}\` |`,
        `| Database | \`${s.database}\` |`,
        `| Data | ${s.data ? provenanceText(s.data) : "empty (branches.data: empty)"} |`,
        `| Built from | dataops-environments ${s.build.projectVersion}, commit \`${s.build.commit.slice(0, 12)}\` |`,
        `| This update | ${changed}${o.recovered ? " (recovered an interrupted update)" : ""} |`,
        `| Expires | ${o.tags[TAG.expiresAt]} (renewed by every push; TTL ${s.ttl ?? "-"}) |`,
        "",
        "**Connect** (passwords are stack secrets, never printed here):",
        "",
        "```",
        ...Object.entries(s.users).map(([u, x]) => `${u.padEnd(12)} ${x.url}`),
        ...Object.entries(s.loaders).map(([l, x]) => `${`loader ${l}`.padEnd(12)} ${x.url}   # ${x.tool}, ${x.mode}`),
        "```",
        "",
        `Passwords: \`pulumi stack output --show-secrets -s ${s.stack} userPasswords\` with the team's state backend.`,
        "",
        `Destroy by hand: \`npx dataops destroy --branch ${shellQuote(s.branch ?? "")} --yes\``,
        "",
    ];
    return lines.join("\n");
}
