// The engine runs our dynamic resources in a provider host, a node process of about
// 115 MB, and the program under a language host; both run in process groups of their own.
// A SIGKILL of the CLI's group (a cancelled CI job, a kill -9) takes the engine with it
// but leaves them running, re-parented to init. These are found by their command
// line (this project's own provider host) and a parent that is no longer an engine.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";

interface Proc {
    readonly pid: number;
    readonly ppid: number;
    readonly args: string;
}

function readProc(pid: number): Proc | undefined {
    try {
        const args = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").join(" ").trim();
        // The parent pid is the 4th field of stat, after the command in parentheses (which may hold spaces).
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
        return { pid, ppid, args };
    } catch {
        return undefined; // gone meanwhile, or not ours to read
    }
}

function cwdOf(pid: number): string | undefined {
    try {
        return readlinkSync(`/proc/${pid}/cwd`);
    } catch {
        return undefined;
    }
}

/** This project's provider hosts whose engine is gone. Linux only (/proc); elsewhere none are found. */
export function orphanedProviders(root: string): number[] {
    let pids: number[];
    try {
        pids = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number);
    } catch {
        return [];
    }
    const host = join(root, "node_modules", "@pulumi", "pulumi", "cmd", "dynamic-provider");
    const out: number[] = [];
    for (const pid of pids) {
        const p = readProc(pid);
        if (!p) continue;
        // The provider host names this project's module; the language host runs in this project.
        const ours = p.args.includes(host) || (/(^|\/)pulumi-language-nodejs$/.test(p.args.split(" ")[0]) && cwdOf(pid) === root);
        if (!ours) continue;
        const parent = p.ppid > 1 ? readProc(p.ppid) : undefined;
        // Started by an engine (pulumi) that still runs: in use by an update, leave it.
        if (parent && /(^|\/)pulumi(\s|$)/.test(parent.args.split(" ")[0])) continue;
        out.push(pid);
    }
    return out;
}

/** End the provider hosts a killed run left behind. Returns how many were ended. */
export function reapOrphanedProviders(root: string, log: (line: string) => void = () => undefined): number {
    const pids = orphanedProviders(root);
    for (const pid of pids) {
        try {
            process.kill(pid, "SIGTERM");
        } catch {
            // already gone
        }
    }
    if (pids.length > 0) log(`dataops: ended ${pids.length} provider process(es) left running by an interrupted run (pid ${pids.join(", ")})`);
    return pids.length;
}

/**
 * Whether a process of this machine is gone. A killed engine whose parent died too is a zombie
 * until init reaps it, which can take a while: it answers signal 0, but it holds nothing.
 */
export function processGone(pid: number): boolean {
    try {
        process.kill(pid, 0);
    } catch (e) {
        return (e as NodeJS.ErrnoException).code === "ESRCH";
    }
    try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
    } catch {
        return false; // no /proc: alive, as signal 0 said
    }
}
