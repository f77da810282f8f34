// The versioned warehouse: `warehouse.engineVersion` pins MAJOR.MINOR, and the server an
// environment runs on must honour it. Same major (another major is another on-disk format
// and another set of behaviours), and at least the pinned minor (minors only fix bugs; an
// older one lacks fixes the pin was chosen for).

export interface PostgresVersion {
    readonly major: number;
    readonly minor: number;
}

/** From `server_version_num` (160014 → 16.14) or text (`16.4`, `17.2 (Debian …)`). */
export function parseVersion(text: string): PostgresVersion {
    const t = text.trim();
    if (/^\d{5,6}$/.test(t)) return { major: Math.floor(Number(t) / 10000), minor: Number(t) % 10000 };
    const m = /^(\d+)(?:\.(\d+))?/.exec(t);
    if (!m) throw new Error(`not a PostgreSQL version: ${JSON.stringify(text)}`);
    return { major: Number(m[1]), minor: Number(m[2] ?? 0) };
}

export const formatVersion = (v: PostgresVersion) => `${v.major}.${v.minor}`;

/** The server does not run the pinned version: nothing was changed (exit 2). */
export class VersionMismatch extends Error {}

/** Why the server does not honour the pin, or undefined when it does. */
export function versionMismatch(pinned: string, running: PostgresVersion, where: string): string | undefined {
    const pin = parseVersion(pinned);
    if (running.major !== pin.major)
        return `dataops:warehouse.engineVersion pins PostgreSQL ${pinned}, but ${where} runs ${formatVersion(running)} (major ${running.major}, not ${pin.major}): run the branch on a server of major ${pin.major}, or change the pin in Pulumi.prod.yaml through a merge request`;
    if (running.minor < pin.minor)
        return `dataops:warehouse.engineVersion pins PostgreSQL ${pinned}, but ${where} runs ${formatVersion(running)}, an older minor: upgrade the server to ${pinned} or later, or lower the pin in Pulumi.prod.yaml through a merge request`;
    return undefined;
}
