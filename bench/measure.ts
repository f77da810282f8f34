// Measuring helpers: wall time of a command, peak memory of its whole process tree
// (engine, language host, program, dynamic provider), and medians.
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";

export interface Sample {
    readonly ms: number;
    /** Peak of the summed resident memory of the process tree, MiB. */
    readonly peakMiB: number;
}

export interface Figure {
    readonly figure: string;
    readonly runs: number[];
    readonly median: number;
    readonly min: number;
    readonly max: number;
    readonly unit: "ms" | "MiB" | "KB";
    readonly note?: string;
}

export function figure(name: string, runs: number[], unit: Figure["unit"] = "ms", note?: string): Figure {
    const sorted = [...runs].sort((a, b) => a - b);
    const mid = Math.floor(sorted.length / 2);
    const median = sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
    return { figure: name, runs, median: Math.round(median), min: Math.round(sorted[0]), max: Math.round(sorted[sorted.length - 1]), unit, note };
}

function children(): Map<number, number[]> {
    const tree = new Map<number, number[]>();
    for (const entry of readdirSync("/proc")) {
        if (!/^\d+$/.test(entry)) continue;
        try {
            const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
            const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
            tree.set(ppid, [...(tree.get(ppid) ?? []), Number(entry)]);
        } catch {
            // the process ended while we looked
        }
    }
    return tree;
}

function treeRssMiB(root: number): number {
    const tree = children();
    let kib = 0;
    const stack = [root];
    while (stack.length) {
        const pid = stack.pop()!;
        try {
            const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
            kib += m ? Number(m[1]) : 0;
        } catch {
            // gone
        }
        stack.push(...(tree.get(pid) ?? []));
    }
    return kib / 1024;
}

/** Run a command to completion; fail loudly if it fails (a benchmark of a failure is no benchmark). */
export function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; input?: string }): Promise<Sample & { stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
        const start = process.hrtime.bigint();
        const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ["pipe", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        let peak = 0;
        const sampler = setInterval(() => {
            peak = Math.max(peak, treeRssMiB(child.pid!));
        }, 100);
        child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        if (opts.input !== undefined) child.stdin.end(opts.input);
        else child.stdin.end();
        child.on("close", (code) => {
            clearInterval(sampler);
            const ms = Number(process.hrtime.bigint() - start) / 1e6;
            if (code !== 0) reject(new Error(`${cmd} ${args.join(" ")} exited ${code}:\n${stderr.slice(-3000)}`));
            else resolve({ ms, peakMiB: Math.round(peak), stdout, stderr });
        });
    });
}

/** Peak memory while an in-process promise runs, sampled over every child of this process. */
export async function sampled<T>(op: () => Promise<T>): Promise<{ value: T; ms: number; peakMiB: number }> {
    let peak = 0;
    const sampler = setInterval(() => {
        // The whole tree, this process included: an in-process (inline) program runs here.
        const self = treeRssMiB(process.pid);
        peak = Math.max(peak, self);
    }, 100);
    const start = process.hrtime.bigint();
    try {
        const value = await op();
        return { value, ms: Number(process.hrtime.bigint() - start) / 1e6, peakMiB: Math.round(peak) };
    } finally {
        clearInterval(sampler);
    }
}
