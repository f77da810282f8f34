// A branch stack's config file (`Pulumi.<stack>.yaml`) and a new stack's first checkpoint,
// written by dataops itself for the passphrase secrets provider.
//
// `pulumi stack init` and `pulumi config set-all` are an engine process each (about 0.45 s),
// most of it the passphrase's key derivation (PBKDF2-SHA256, 1,000,000 rounds), paid again by
// every process. Both write small, documented formats (engine 3.248, pinned in
// engine/versions.json):
// - `encryptionsalt: v1:<salt>:v1:<nonce>:<ciphertext of "pulumi">`, the salt 8 random bytes;
// - a secret as `secure: v1:<nonce>:<ciphertext>`, AES-256-GCM with a 12-byte nonce, the tag
//   after the ciphertext;
// - the checkpoint a new stack starts with: its name, a manifest and the secrets provider.
// The engine reads them back in the update that follows (and the e2e suites check it decrypts
// them). Writing the file whole through a rename also means another run's engine never reads it
// half-written, as it could while `set-all` rewrote it in place.
//
// The derived key of the checkout's own passphrase (.dataops/passphrase, the local default) is
// kept beside it (.dataops/passphrase-keys.json, 0600: what it protects is that passphrase's),
// so a laptop derives once per salt. A passphrase from the environment (CI) is derived in this
// process, once per run, and never written anywhere.
import { createCipheriv, createDecipheriv, createHash, pbkdf2Sync, randomBytes } from "node:crypto";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";

export interface ConfigValue {
    readonly value: string;
    readonly secret?: boolean;
}

const ROUNDS = 1_000_000;

/** The passphrase the engine would use, from the same variables in the same order; undefined when there is none. */
export function enginePassphrase(env: Readonly<Record<string, string | undefined>>): string | undefined {
    if (env.PULUMI_CONFIG_PASSPHRASE !== undefined) return env.PULUMI_CONFIG_PASSPHRASE;
    const file = env.PULUMI_CONFIG_PASSPHRASE_FILE;
    if (!file) return undefined;
    try {
        return readFileSync(file, "utf8").trim();
    } catch {
        return undefined; // the engine says what is wrong with it
    }
}

/** A stack's key: its `encryptionsalt` state and the AES key it names. */
export class StackKey {
    constructor(
        readonly state: string,
        private readonly key: Buffer,
    ) {}

    encrypt(plain: string): string {
        const nonce = randomBytes(12);
        const c = createCipheriv("aes-256-gcm", this.key, nonce);
        const body = Buffer.concat([c.update(plain, "utf8"), c.final(), c.getAuthTag()]);
        return `v1:${nonce.toString("base64")}:${body.toString("base64")}`;
    }

    /** The plaintext, or undefined when it is not this key's. */
    decrypt(value: string): string | undefined {
        const [v, nonce, body] = value.split(":");
        if (v !== "v1" || !nonce || !body) return undefined;
        try {
            const raw = Buffer.from(body, "base64");
            const d = createDecipheriv("aes-256-gcm", this.key, Buffer.from(nonce, "base64"));
            d.setAuthTag(raw.subarray(raw.length - 16));
            return Buffer.concat([d.update(raw.subarray(0, raw.length - 16)), d.final()]).toString("utf8");
        } catch {
            return undefined;
        }
    }
}

/** Derived keys by salt, for one passphrase, optionally kept in a file. */
export class KeyRing {
    private readonly keys = new Map<string, Buffer>();

    constructor(
        private readonly passphrase: string,
        private readonly file?: string,
    ) {
        if (!file || !existsSync(file)) return;
        try {
            const saved = JSON.parse(readFileSync(file, "utf8")) as { check?: string; keys?: Record<string, string> };
            if (saved.check === this.check()) for (const [salt, key] of Object.entries(saved.keys ?? {})) this.keys.set(salt, Buffer.from(key, "base64"));
        } catch {
            // unreadable: derived again and rewritten
        }
    }

    /** Which passphrase the file's keys are of, without saying it. */
    private check(): string {
        return createHash("sha256").update(`dataops passphrase keys\0${this.passphrase}`).digest("hex");
    }

    private derive(salt: string): Buffer {
        let key = this.keys.get(salt);
        if (key) return key;
        key = pbkdf2Sync(this.passphrase, Buffer.from(salt, "base64"), ROUNDS, 32, "sha256");
        this.keys.set(salt, key);
        if (this.file) {
            const keys = Object.fromEntries([...this.keys].slice(-64).map(([s, k]) => [s, k.toString("base64")]));
            const tmp = `${this.file}.${process.pid}.tmp`;
            writeFileSync(tmp, JSON.stringify({ check: this.check(), keys }), { mode: 0o600 });
            renameSync(tmp, this.file);
        }
        return key;
    }

    /** The key an `encryptionsalt` state names, or undefined when the state is not one this passphrase opens. */
    open(state: string): StackKey | undefined {
        const [v, salt, ...check] = state.split(":");
        if (v !== "v1" || !salt) return undefined;
        const key = new StackKey(state, this.derive(salt));
        return key.decrypt(check.join(":")) === "pulumi" ? key : undefined;
    }

    /** A key for a new stack: the salt of the newest key this ring holds (no derivation), else a new one. */
    fresh(): StackKey {
        const salt = [...this.keys.keys()].pop() ?? randomBytes(8).toString("base64");
        const key = new StackKey("", this.derive(salt));
        return new StackKey(`v1:${salt}:${key.encrypt("pulumi")}`, this.derive(salt));
    }
}

export function stackConfigFile(root: string, stack: string): string {
    return join(root, `Pulumi.${stack}.yaml`);
}

/**
 * Set these values in the stack's config file (others kept; an unchanged secret keeps its
 * ciphertext), making its `encryptionsalt` when the file has none. Returns the stack's key, or
 * undefined, changing nothing, when this passphrase does not open the file's salt (the engine
 * then says so in its own words).
 */
export function writeStackConfig(root: string, stack: string, ring: KeyRing, values: Readonly<Record<string, ConfigValue>>): StackKey | undefined {
    const file = stackConfigFile(root, stack);
    const doc = ((existsSync(file) ? parse(readFileSync(file, "utf8")) : undefined) ?? {}) as { encryptionsalt?: unknown; config?: Record<string, unknown>; [k: string]: unknown };
    if (typeof doc !== "object" || Array.isArray(doc)) return undefined;
    // A stack of another secrets provider (a KMS key): the engine's own commands.
    if (doc.secretsprovider !== undefined || doc.encryptedkey !== undefined) return undefined;
    const key = typeof doc.encryptionsalt === "string" ? ring.open(doc.encryptionsalt) : doc.encryptionsalt === undefined && !hasSecure(doc.config) ? ring.fresh() : undefined;
    if (!key) return undefined;
    const config: Record<string, unknown> = { ...(doc.config ?? {}) };
    for (const [k, v] of Object.entries(values)) {
        if (!v.secret) config[k] = v.value;
        else {
            const now = config[k] as { secure?: unknown } | undefined;
            const same = typeof now?.secure === "string" && key.decrypt(now.secure) === v.value;
            if (!same) config[k] = { secure: key.encrypt(v.value) };
        }
    }
    const out = { ...doc, encryptionsalt: key.state, config: Object.fromEntries(Object.entries(config).sort(([a], [b]) => a.localeCompare(b))) };
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, stringify(out, { lineWidth: 0 }), { mode: 0o644 });
    renameSync(tmp, file);
    return key;
}

function hasSecure(config: Record<string, unknown> | undefined): boolean {
    return Object.values(config ?? {}).some((v) => typeof v === "object" && v !== null && "secure" in v);
}

/** The checkpoint `pulumi stack init` writes for a new stack of a DIY backend (no resources yet). */
export function newCheckpoint(project: string, stack: string, engineVersion: string, key: StackKey, now: Date): string {
    const version = `v${engineVersion}`;
    return JSON.stringify({
        version: 3,
        checkpoint: {
            stack: `organization/${project}/${stack}`,
            latest: {
                manifest: { time: now.toISOString(), magic: createHash("sha256").update(version).digest("hex"), version },
                secrets_providers: { type: "passphrase", state: { salt: key.state } },
                metadata: {},
            },
        },
    });
}
