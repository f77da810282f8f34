// The report for people: text by default, Markdown for a merge-request comment.
import { show } from "./mirror";
import type { AuditReport, Finding } from "./types";

export const MARKDOWN_MARKER = "<!-- dataops-audit -->";

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

export function verdict(r: AuditReport): string {
    const s = r.summary;
    return s.findings === 0 ? "clean" : `${plural(s.findings, "finding")} (${plural(s.errors, "error")}, ${plural(s.warnings, "warning")})`;
}

/** Which section of the output a finding belongs to. */
export function sectionOf(f: Finding): "validation" | "policies" | "mirror" {
    return f.id === "validation" ? "validation" : f.id.startsWith("mirror-") ? "mirror" : "policies";
}

const where = (f: Finding) => (f.key === "" ? f.file : `${f.file}: ${f.key}`);

type Name = (s: string) => string;
const plain: Name = (s) => s;

function mirrorTitle(r: AuditReport, name: Name = plain): string {
    const m = r.mirror;
    if (m.status === "derived") return `Mirror (stack ${name(m.stack)}${m.branch !== undefined ? `, branch ${name(m.branch)}` : ""})`;
    return m.stack !== undefined ? `Mirror (stack ${name(m.stack)})` : "Mirror";
}

function accessTitle(r: AuditReport, name: Name = plain): string {
    return r.access.status === "compared" ? `Access diff (base ${name(r.access.base)} @ ${name(r.access.commit.slice(0, 7))})` : "Access diff";
}

export function renderText(r: AuditReport): string[] {
    const out: string[] = [`dataops audit: ${r.files.length > 0 ? r.files.join(", ") : "no stack files"}`];
    const findings = (section: ReturnType<typeof sectionOf>) => {
        const fs = r.findings.filter((f) => sectionOf(f) === section);
        if (fs.length === 0 && section !== "mirror") out.push("  ok");
        for (const f of fs) out.push(`  ${f.severity} [${f.id}] ${where(f)}: ${f.message}`, `      fix: ${f.fix}`);
    };

    out.push("", "Validation");
    findings("validation");
    out.push("", "Policies");
    findings("policies");
    for (const s of r.skipped) out.push(`  skipped ${s.file}: ${s.reason}`);

    out.push("", mirrorTitle(r));
    const m = r.mirror;
    if (m.status === "not-applicable") out.push(`  not applicable: ${m.reason}`);
    else {
        if (m.server !== undefined) out.push(`  server: ${m.server}`);
        if (m.differences.length === 0) out.push("  no differences from production");
        for (const d of m.differences) out.push(`  ${d.path}: ${show(d.production)} → ${show(d.branch)}  (${d.explained ? "" : "NOT EXPLAINED: "}${d.reason})`);
    }
    findings("mirror");

    out.push("", accessTitle(r));
    const a = r.access;
    if (a.status === "no-base") out.push(`  no base to compare with: ${a.reason}`);
    else
        for (const s of a.stacks) {
            if (s.note !== undefined) out.push(`  ${s.file}: ${s.note}`);
            else if (s.added.length + s.removed.length === 0 && !s.version) out.push(`  ${s.file}: no change`);
            else out.push(`  ${s.file}`, ...(s.version ? [`    ~ ${s.version}`] : []), ...s.removed.map((l) => `    - ${l}`), ...s.added.map((l) => `    + ${l}`));
        }

    out.push("", `audit: ${verdict(r)}`);
    return out;
}

const cell = (s: string) => s.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\r?\n/g, " ");
const code = (s: string) => (s === "" ? "" : `\`${s.replace(/`/g, "'")}\``);

export function renderMarkdown(r: AuditReport): string[] {
    const out: string[] = [MARKDOWN_MARKER, `### dataops audit: ${verdict(r)}`, "", `Stack files: ${r.files.map(code).join(", ") || "none"}`, "", "#### Findings", ""];
    if (r.findings.length === 0) out.push("No findings.");
    else {
        out.push("| Severity | Id | Where | Message | Fix |", "| --- | --- | --- | --- | --- |");
        for (const f of r.findings) out.push(`| ${f.severity} | ${code(f.id)} | ${cell([code(f.file), code(f.key)].filter((x) => x !== "").join(" "))} | ${cell(f.message)} | ${cell(f.fix)} |`);
    }
    if (r.skipped.length > 0) out.push("", ...r.skipped.map((s) => `- Skipped ${code(s.file)}: ${cell(s.reason)}`));

    const m = r.mirror;
    out.push("", `#### ${mirrorTitle(r, code)}`, "");
    if (m.status === "not-applicable") out.push(`Not applicable: ${m.reason}.`);
    else {
        if (m.server !== undefined) out.push(`Branch server: ${m.server}.`, "");
        if (m.differences.length === 0) out.push("No differences from production.");
        else {
            out.push("| Key | Production | Branch | Reason |", "| --- | --- | --- | --- |");
            for (const d of m.differences)
                out.push(`| ${code(d.path)} | ${cell(code(show(d.production)))} | ${cell(code(show(d.branch)))} | ${d.explained ? "" : "**not explained**: "}${cell(d.reason)} |`);
        }
    }

    const a = r.access;
    out.push("", `#### ${accessTitle(r, code)}`, "");
    if (a.status === "no-base") out.push(`No base to compare with: ${a.reason}.`);
    else {
        out.push("```diff");
        for (const s of a.stacks) {
            out.push(`@@ ${s.file} @@`);
            if (s.note !== undefined) out.push(`  (${s.note})`);
            else if (s.added.length + s.removed.length === 0 && !s.version) out.push("  (no change)");
            else out.push(...(s.version ? [`! ${s.version}`] : []), ...s.removed.map((l) => `- ${l}`), ...s.added.map((l) => `+ ${l}`));
        }
        out.push("```");
    }
    return out;
}
