// An S3 state backend, addressed exactly as the engine addresses it, so that dataops and the
// engine talk to the same bucket: the engine's s3:// URL (gocloud.dev s3blob on the AWS SDK
// v2) names the bucket, an optional key prefix and query parameters; everything else comes
// from the AWS SDK's usual environment (AWS_REGION, AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL,
// credentials, AWS_PROFILE), which the JavaScript SDK reads as the Go one does.
import type { S3Client, S3ClientConfig } from "@aws-sdk/client-s3";
import { DEFAULT_LEASE_SECONDS, leaseSeconds } from "../lifecycle/locks";
import type { StateStore, StoredObject } from "./stateStore";

export class BackendUrlError extends Error {}

export interface S3Settings {
    readonly bucket: string;
    /** Key prefix inside the bucket ("" or ending in "/"), as the engine's PrefixedBucket. */
    readonly prefix: string;
    readonly client: S3ClientConfig;
    /** Server-side encryption for objects dataops writes (the URL's sseType / kmskeyid). */
    readonly encryption?: { readonly type: string; readonly kmsKeyId?: string };
    /** The URL without its query (no credentials can be in it), for messages. */
    readonly where: string;
}

/** Query parameters the engine understands that do not change where or how objects are read. */
const IGNORED = new Set(["awssdk", "no_tmp_dir", "hostname_immutable", "rate_limiter_capacity"]);
const SUPPORTED = [
    "region",
    "endpoint",
    "profile",
    "use_path_style",
    "s3ForcePathStyle",
    "disable_https",
    "disableSSL",
    "dualstack",
    "fips",
    "accelerate",
    "sseType",
    "kmskeyid",
    "request_checksum_calculation",
    "response_checksum_validation",
    ...IGNORED,
];

function bool(key: string, value: string): boolean {
    // Go's strconv.ParseBool, which the engine uses for these parameters.
    if (["1", "t", "T", "TRUE", "true", "True"].includes(value)) return true;
    if (["0", "f", "F", "FALSE", "false", "False"].includes(value)) return false;
    throw new BackendUrlError(`PULUMI_BACKEND_URL: the query parameter ${key} must be true or false, given "${value}"`);
}

/**
 * How the engine would open this s3:// URL, for the JavaScript SDK. Parameters as in
 * gocloud.dev v0.46 (with Pulumi's translation of the SDK v1 names disableSSL and a scheme-less
 * endpoint); `role` and `anonymous` are refused rather than half-supported.
 */
export function s3Settings(url: string, env: Readonly<Record<string, string | undefined>>): S3Settings {
    let u: URL;
    try {
        u = new URL(url);
    } catch {
        throw new BackendUrlError(`PULUMI_BACKEND_URL: not a valid s3:// URL (s3://BUCKET[/PREFIX][?region=…&endpoint=…]), given "${url.replace(/\?.*/, "?…")}"`);
    }
    if (u.protocol !== "s3:" || !u.hostname) throw new BackendUrlError(`PULUMI_BACKEND_URL: an s3:// URL names a bucket (s3://BUCKET[/PREFIX]), given "${url.replace(/\?.*/, "?…")}"`);
    const q = u.searchParams;
    for (const key of q.keys())
        if (!SUPPORTED.includes(key))
            throw new BackendUrlError(
                `PULUMI_BACKEND_URL: dataops reads the bucket itself and does not support the query parameter "${key}" (supported: ${SUPPORTED.join(", ")}); set it through the AWS environment instead (AWS_PROFILE, AWS_ROLE_ARN, credentials)`,
            );
    const get = (key: string) => q.getAll(key).at(-1);
    const client: S3ClientConfig = {};
    const region = get("region") ?? env.AWS_REGION ?? env.AWS_DEFAULT_REGION;
    if (region) client.region = region;
    const disableSSL = get("disableSSL");
    const noHttps = get("disable_https") ?? disableSSL;
    const plain = noHttps !== undefined && bool(disableSSL !== undefined && get("disable_https") === undefined ? "disableSSL" : "disable_https", noHttps);
    let endpoint = get("endpoint") ?? env.AWS_ENDPOINT_URL_S3 ?? env.AWS_ENDPOINT_URL;
    if (endpoint && !endpoint.includes("://")) endpoint = `${plain ? "http" : "https"}://${endpoint}`;
    if (endpoint) client.endpoint = endpoint;
    else if (plain) client.tls = false;
    // Keys given in the environment dataops was handed (the process's own, in the CLI); otherwise the SDK's chain (profile, SSO, instance role).
    if (env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY)
        client.credentials = { accessKeyId: env.AWS_ACCESS_KEY_ID, secretAccessKey: env.AWS_SECRET_ACCESS_KEY, ...(env.AWS_SESSION_TOKEN ? { sessionToken: env.AWS_SESSION_TOKEN } : {}) };
    const profile = get("profile");
    if (profile) client.profile = profile;
    for (const key of ["use_path_style", "s3ForcePathStyle"]) {
        const v = get(key);
        if (v !== undefined) client.forcePathStyle = bool(key, v);
    }
    const flag = (key: string) => {
        const v = get(key);
        return v === undefined ? undefined : bool(key, v);
    };
    if (flag("dualstack")) client.useDualstackEndpoint = true;
    if (flag("fips")) client.useFipsEndpoint = true;
    if (flag("accelerate")) client.useAccelerateEndpoint = true;
    for (const [key, field] of [
        ["request_checksum_calculation", "requestChecksumCalculation"],
        ["response_checksum_validation", "responseChecksumValidation"],
    ] as const) {
        const v = get(key);
        if (v === undefined) continue;
        if (v !== "when_supported" && v !== "when_required") throw new BackendUrlError(`PULUMI_BACKEND_URL: ${key}: allowed when_supported | when_required, given "${v}"`);
        client[field] = v === "when_supported" ? "WHEN_SUPPORTED" : "WHEN_REQUIRED";
    }
    const sse = get("sseType");
    const prefix = decodeURIComponent(u.pathname).replace(/^\/+/, "");
    return {
        bucket: u.hostname,
        prefix: prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`,
        client,
        ...(sse ? { encryption: { type: sse, ...(get("kmskeyid") ? { kmsKeyId: get("kmskeyid") } : {}) } } : {}),
        where: `s3://${u.hostname}${u.pathname}`,
    };
}

let sdk: typeof import("@aws-sdk/client-s3") | undefined;
/** The SDK is loaded on first use: commands on a file backend never pay for it. */
function s3(): typeof import("@aws-sdk/client-s3") {
    // The pinned SDK runs on the Node versions this project supports (>= 20); its notice about
    // later SDK versions would be printed by every command.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
    sdk ??= require("@aws-sdk/client-s3") as typeof import("@aws-sdk/client-s3");
    return sdk;
}

/**
 * Timeouts for every request (the SDK's defaults are none): a lease is renewed every period/6,
 * and a request that hangs must fail well within one beat, not hold the renewals back.
 */
export function s3Timeouts(env: Readonly<Record<string, string | undefined>>): { connectionTimeout: number; requestTimeout: number } {
    let period = DEFAULT_LEASE_SECONDS;
    try {
        period = leaseSeconds(env);
    } catch {
        // refused with its key named where the context is made
    }
    const beatMs = (period * 1000) / 6;
    return { connectionTimeout: Math.floor(beatMs / 4), requestTimeout: Math.floor(beatMs / 2) };
}

export function s3Store(url: string, env: Readonly<Record<string, string | undefined>>): StateStore {
    const settings = s3Settings(url, env);
    let client: S3Client | undefined;
    // Options, not a handler instance: the SDK makes its own NodeHttpHandler from them.
    const c = () => (client ??= new (s3().S3Client)({ ...settings.client, requestHandler: { ...s3Timeouts(env), throwOnRequestTimeout: true } }));
    const full = (key: string) => `${settings.prefix}${key}`;
    const what = (op: string, e: unknown) => new Error(`${settings.where}: ${op} failed: ${(e as Error).name ?? ""} ${(e as Error).message ?? e}`.replace(/\s+/g, " ").trim());
    return {
        where: settings.where,
        async list(prefix) {
            const out: StoredObject[] = [];
            let token: string | undefined;
            do {
                const r = await c()
                    .send(new (s3().ListObjectsV2Command)({ Bucket: settings.bucket, Prefix: full(prefix), ContinuationToken: token }))
                    .catch((e: unknown) => {
                        throw what(`listing ${prefix}`, e);
                    });
                for (const o of r.Contents ?? [])
                    if (o.Key) out.push({ key: o.Key.slice(settings.prefix.length), size: o.Size ?? 0, modified: o.LastModified ?? new Date(0) });
                token = r.IsTruncated ? r.NextContinuationToken : undefined;
            } while (token);
            return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
        },
        async read(key) {
            try {
                const r = await c().send(new (s3().GetObjectCommand)({ Bucket: settings.bucket, Key: full(key) }));
                return await r.Body!.transformToString("utf8");
            } catch (e) {
                if ((e as Error).name === "NoSuchKey" || (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return undefined;
                throw what(`reading ${key}`, e);
            }
        },
        async write(key, body, options) {
            const sse = settings.encryption;
            await c()
                .send(
                    new (s3().PutObjectCommand)({
                        Bucket: settings.bucket,
                        Key: full(key),
                        Body: body,
                        ContentType: "application/json",
                        ...(sse ? { ServerSideEncryption: sse.type as "AES256", ...(sse.kmsKeyId ? { SSEKMSKeyId: sse.kmsKeyId } : {}) } : {}),
                    }),
                    options?.signal ? { abortSignal: options.signal } : {},
                )
                .catch((e: unknown) => {
                    throw what(`writing ${key}`, e);
                });
        },
        async remove(keys) {
            // DeleteObjects takes up to 1000 keys a call; a key already gone is not an error in S3.
            for (let i = 0; i < keys.length; i += 1000) {
                const batch = keys.slice(i, i + 1000);
                const r = await c()
                    .send(new (s3().DeleteObjectsCommand)({ Bucket: settings.bucket, Delete: { Objects: batch.map((k) => ({ Key: full(k) })), Quiet: true } }))
                    .catch((e: unknown) => {
                        throw what(`deleting ${batch.length} object(s)`, e);
                    });
                if (r.Errors && r.Errors.length > 0) throw new Error(`${settings.where}: could not delete ${r.Errors.map((x) => `${x.Key?.slice(settings.prefix.length)} (${x.Code})`).join(", ")}`);
            }
        },
    };
}
