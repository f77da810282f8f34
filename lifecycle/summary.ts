// The Markdown an `up` leaves for a merge-request or pull-request comment. No secrets:
// connection strings carry no password, and it says how to get one.
import type { UpOutcome } from "./environments";
import { shellQuote } from "./connection";
import { TAG } from "./policy";

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
