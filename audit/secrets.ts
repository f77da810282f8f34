// No plaintext secret in committed config: a key that names a secret must hold a
// `secure:` value, and no value anywhere may look like a credential. The raw YAML is
// scanned (every namespace, every depth); the secret itself is never printed.
import type { Finding } from "./types";

/**
 * Whether a key names a secret: a password, secret, token, API or private key, or credential.
 * Matched on the key's words (camelCase, _ - .), so `sslpassword`, `apiKey` and
 * `CLIENT_SECRET` count while `passenger` or `tokenizer` do not.
 */
export function namesSecret(key: string): boolean {
    const words = key.replace(/([a-z0-9])([A-Z])/g, "$1 $2").toLowerCase().split(/[^a-z0-9]+/).filter((w) => w !== "");
    return words.some(
        (w, i) =>
            /(password|passwd|passphrase)$/.test(w) ||
            /^(pass|pwd|secrets?|credentials?|apikey|privatekey)$/.test(w) ||
            /token$/.test(w) ||
            ((w === "api" || w === "private") && words[i + 1] === "key"),
    );
}

/** Values that are credentials whatever their key, as data: pattern and what it is. */
export const CREDENTIAL_SHAPES: ReadonlyArray<readonly [RegExp, string]> = [
    [/\b(AKIA|ASIA)[0-9A-Z]{16}\b/, "an AWS access key id"],
    [/-----BEGIN [A-Z ]*PRIVATE KEY-----/, "a private key"],
    [/\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:(?!\$)[^\s/@]+@/i, "a connection string with a password"],
    [/\bxox[abposr]-[A-Za-z0-9-]{10,}/, "a Slack token"],
    [/\b(gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})/, "a GitHub token"],
    [/\b[sr]k_live_[A-Za-z0-9]{16,}/, "a Stripe secret key"],
    [/\b(password|passwd|pwd)\s*=\s*(?!\$)[^\s;&'"]+/i, "a password setting"],
];

/** Where a key names secrets without holding one: a loader's list of secret setting *names*. */
const NAME_LISTS = [/^dataops:loaders\[\d+\]\.secrets$/];

type Path = ReadonlyArray<string | number>;

function isSecure(v: unknown): boolean {
    return typeof v === "object" && v !== null && !Array.isArray(v) && Object.keys(v).length === 1 && "secure" in v;
}

/** `["dataops:loaders", 1, "settings", "password"]` → `dataops:loaders[1].settings.password`. */
export function pathText(path: Path): string {
    return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

function finding(file: string, key: string, message: string): Finding {
    return {
        id: "plaintext-secret",
        severity: "error",
        file,
        key,
        message,
        fix: `remove it from ${file}, rotate it (it is in git history), and set it as a secret (pulumi config set --secret, or a masked CI variable)`,
    };
}

/** Every plaintext secret in a parsed stack document. */
export function plaintextSecrets(file: string, document: unknown): Finding[] {
    const out: Finding[] = [];
    const visit = (value: unknown, path: Path, underSecretName: boolean) => {
        if (isSecure(value)) return;
        const key = pathText(path);
        if (typeof value === "string") {
            if (underSecretName && value.length > 0 && !NAME_LISTS.some((r) => r.test(key)))
                out.push(finding(file, key, "is a plaintext value under a key that names a secret (the value is not shown)"));
            else {
                const shape = CREDENTIAL_SHAPES.find(([re]) => re.test(value));
                if (shape) out.push(finding(file, key, `looks like ${shape[1]} in plaintext (the value is not shown)`));
            }
            return;
        }
        if (Array.isArray(value)) {
            value.forEach((v, i) => visit(v, [...path, i], underSecretName && !NAME_LISTS.some((r) => r.test(key))));
            return;
        }
        if (typeof value === "object" && value !== null) {
            for (const [k, v] of Object.entries(value)) visit(v, [...path, k], underSecretName || namesSecret(k));
        }
    };
    if (typeof document !== "object" || document === null || Array.isArray(document)) return out;
    for (const [top, v] of Object.entries(document)) {
        // Key names count inside `config:` only; elsewhere (secretsprovider, encryptionsalt) only credential shapes do.
        if (top === "config" && typeof v === "object" && v !== null && !Array.isArray(v)) {
            for (const [k, cv] of Object.entries(v)) visit(cv, [k], namesSecret(k.slice(k.indexOf(":") + 1)));
        } else visit(v, [top], false);
    }
    return out;
}
