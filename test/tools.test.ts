// dataops env, load and dbt without the engine: the variables and formats, the load
// plan (modes, refusals), the sample row cap, and the argument rules.
import { execFileSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { main, splitDbtArgs, type Io } from "../cli/main";
import { defaultDbtUser, parseFormat, parseIdentity, planLoad } from "../cli/tools";
import { UsageError } from "../cli/lifecycle";
import type { EnvironmentSummary } from "../components/dataPlatform";
import { isConcurrencyAbort } from "../components/catalogSql";
import { connectionVariables, type EnvironmentOutputs, formatVariables, shellQuote, UnknownIdentity } from "../lifecycle/connection";
import { Refused } from "../lifecycle/environments";
import { adviceFor, failureLines, failureSummaryMarkdown } from "../lifecycle/failure";
import { RecordCap } from "../local/singer";
import { EngineRefused, sqlEngineChoice } from "../local/workspace";
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const summary = (sslMode: string): EnvironmentSummary => ({
    stack: "br-feature-a_951d42dc",
    kind: "branch",
    branch: "feature/a",
    ttl: "72h",
    target: "server",
    engineVersion: "16.4",
    serverVersion: "16.14", data: null,
    host: "db.example",
    port: 5433,
    sslMode,
    database: "br_feature_a_8221f6cb_analytics",
    schemas: ["staging", "marts", "raw_stripe"],
    roles: {},
    users: {
        alice: { login: "br_feature_a_8221f6cb_alice", url: "postgresql://…", roles: ["transformer"], writes: true },
        bob: { login: "br_feature_a_8221f6cb_bob", url: "postgresql://…", roles: ["reporter"], writes: false },
    },
    loaders: { stripe: { tool: "fivetran", role: "br_feature_a_8221f6cb_loader_stripe", schema: "raw_stripe", runtime: "cli", mode: "sample", url: "postgresql://…" } },
    build: { projectVersion: "0.1.0", commit: "abc" },
});

const outputs = (sslMode = "require"): EnvironmentOutputs => ({
    environment: summary(sslMode),
    userPasswords: { alice: "pw-alice", bob: "pw-bob" },
    loaderConnections: { stripe: { host: "db.example", port: 5433, database: "br_feature_a_8221f6cb_analytics", schema: "raw_stripe", user: "br_feature_a_8221f6cb_loader_stripe", password: "pw-stripe" } },
    adminConnection: { host: "db.example", port: 5433, user: "dataops_admin", password: "pw-admin", sslMode },
});

describe("dataops env: the variables of an identity", () => {
    it("GIVEN a user WHEN asked THEN libpq's five names and PGSSLMODE, nothing more", () => {
        expect(connectionVariables(outputs(), { kind: "user", name: "alice" })).toEqual({
            PGHOST: "db.example",
            PGPORT: "5433",
            PGDATABASE: "br_feature_a_8221f6cb_analytics",
            PGUSER: "br_feature_a_8221f6cb_alice",
            PGPASSWORD: "pw-alice",
            PGSSLMODE: "require",
        });
    });

    it("GIVEN a loader WHEN asked THEN also its raw schema and the Singer target's settings, with TLS where the server needs it", () => {
        expect(connectionVariables(outputs(), { kind: "loader", name: "stripe" })).toEqual({
            PGHOST: "db.example",
            PGPORT: "5433",
            PGDATABASE: "br_feature_a_8221f6cb_analytics",
            PGUSER: "br_feature_a_8221f6cb_loader_stripe",
            PGPASSWORD: "pw-stripe",
            PGSSLMODE: "require",
            DATAOPS_SCHEMA: "raw_stripe",
            TARGET_POSTGRES_HOST: "db.example",
            TARGET_POSTGRES_PORT: "5433",
            TARGET_POSTGRES_DATABASE: "br_feature_a_8221f6cb_analytics",
            TARGET_POSTGRES_USER: "br_feature_a_8221f6cb_loader_stripe",
            TARGET_POSTGRES_PASSWORD: "pw-stripe",
            TARGET_POSTGRES_DEFAULT_TARGET_SCHEMA: "raw_stripe",
            TARGET_POSTGRES_SSL_ENABLE: "true",
            TARGET_POSTGRES_SSL_MODE: "require",
        });
        expect(Object.keys(connectionVariables(outputs("disable"), { kind: "loader", name: "stripe" }))).not.toContain("TARGET_POSTGRES_SSL_ENABLE");
    });

    it("GIVEN --admin WHEN asked THEN the warehouse admin on the environment's database", () => {
        expect(connectionVariables(outputs(), { kind: "admin" })).toMatchObject({ PGUSER: "dataops_admin", PGPASSWORD: "pw-admin", PGDATABASE: "br_feature_a_8221f6cb_analytics" });
    });

    it("GIVEN an unknown name WHEN asked THEN the error lists the valid ones", () => {
        expect(() => connectionVariables(outputs(), { kind: "user", name: "carol" })).toThrow(new UnknownIdentity("--user carol: no such user in br-feature-a_951d42dc (users: alice, bob)"));
        expect(() => connectionVariables(outputs(), { kind: "loader", name: "hubspot" })).toThrow(new UnknownIdentity("--loader hubspot: no such loader in br-feature-a_951d42dc (loaders: stripe)"));
    });

    it("GIVEN each format WHEN printed THEN dotenv is KEY=value, json an object, shell export lines", () => {
        const vars = { PGHOST: "db.example", PGPASSWORD: "p w'$x" };
        expect(formatVariables(vars, "dotenv")).toBe('PGHOST=db.example\nPGPASSWORD="p w\'\\$x"');
        expect(JSON.parse(formatVariables(vars, "json"))).toEqual(vars);
        expect(formatVariables(vars, "shell")).toBe("export PGHOST=db.example\nexport PGPASSWORD='p w'\\''$x'");
    });

    it("GIVEN hostile values WHEN printed for a shell and run by one THEN each comes back as it was and runs nothing", () => {
        const hostile = { A: "q'$(touch /tmp/dataops-pwned)'q", B: "`id`", C: 'x"; rm -rf ~ #', D: "new\nline" };
        const script = `${formatVariables(hostile, "shell")}\nprintf '%s\\0' "$A" "$B" "$C" "$D"`;
        const echoed = execFileSync("sh", ["-c", script], { encoding: "utf8" }).split("\0").slice(0, 4);
        expect(echoed).toEqual(Object.values(hostile));
        expect(shellQuote("plain-value_1.2")).toBe("plain-value_1.2");
    });

    it("GIVEN the options WHEN parsed THEN exactly one identity and a known format are required", () => {
        expect(parseIdentity({ user: "alice" })).toEqual({ kind: "user", name: "alice" });
        expect(parseIdentity({ admin: true })).toEqual({ kind: "admin" });
        expect(() => parseIdentity({})).toThrow(new UsageError("give exactly one of --user NAME, --loader NAME or --admin (given 0)"));
        expect(() => parseIdentity({ user: "alice", loader: "stripe" })).toThrow(UsageError);
        expect(() => parseIdentity({ user: "" })).toThrow(new UsageError("--user is empty (give a user name from dataops:access.users)"));
        expect(parseFormat(undefined)).toBe("dotenv");
        expect(() => parseFormat("yaml")).toThrow(new UsageError('--format: allowed dotenv | json | shell, given "yaml"'));
    });

    it("GIVEN a usage error WHEN the CLI runs THEN it exits 2 before reaching the engine, naming the argument", async () => {
        const lines: string[] = [];
        const io: Io = { out: (l) => lines.push(l), err: (l) => lines.push(l), env: {}, cwd: process.cwd() };
        expect(await main(["env", "--user", "alice", "--format", "toml"], io)).toBe(2);
        expect(lines[0]).toBe('dataops env: --format: allowed dotenv | json | shell, given "toml"');
        expect(await main(["env", "--admin", "--user", "bob"], io)).toBe(2);
        expect(await main(["env", "--nope"], io)).toBe(2);
        expect(await main(["dbt"], io)).toBe(2);
        expect(lines).toContain("dataops dbt: give a dbt command, e.g. dataops dbt build");
    });
});

describe("dataops load: the plan", () => {
    const modes = { salesforce: "sample", stripe: "live", web_events: "paused" };

    it("GIVEN no names WHEN planned THEN every loader runs but the paused, which are listed as skipped; sample is capped", () => {
        expect(planLoad(modes, [], false)).toEqual({
            run: [
                { loader: "salesforce", mode: "sample", limit: 1000 },
                { loader: "stripe", mode: "live", limit: undefined },
            ],
            skipped: [{ loader: "web_events", reason: "paused in branch environments (dataops load web_events --force runs it)" }],
        });
    });

    it("GIVEN a paused loader named WHEN planned THEN it is refused unless forced, before anything runs", () => {
        expect(() => planLoad(modes, ["stripe", "web_events"], false)).toThrow(
            new Refused("web_events is paused in branch environments (a branch must not hammer the source); run it anyway with --force"),
        );
        expect(planLoad(modes, ["web_events"], true).run).toEqual([{ loader: "web_events", mode: "paused", limit: undefined }]);
    });

    it("GIVEN an unknown loader WHEN planned THEN a usage error lists the loaders", () => {
        expect(() => planLoad(modes, ["hubspot"], false)).toThrow(new UsageError("no loader named hubspot in this environment (loaders: salesforce, stripe, web_events)"));
    });

    it("GIVEN a tap's messages WHEN capped THEN RECORDs past the cap of their stream are dropped and everything else passes", () => {
        const cap = new RecordCap(2);
        const record = (stream: string) => JSON.stringify({ type: "RECORD", stream, record: { id: 1 } });
        const lines = [
            JSON.stringify({ type: "SCHEMA", stream: "a", schema: {}, key_properties: [] }),
            record("a"),
            record("a"),
            record("a"),
            record("b"),
            JSON.stringify({ type: "STATE", value: { bookmarks: {} } }),
            "",
        ];
        expect(lines.map((l) => cap.pass(l))).toEqual([true, true, true, false, true, true, false]);
        expect(cap.passed).toEqual({ a: 2, b: 1 });
        expect(cap.dropped).toEqual({ a: 1 });
        expect(new RecordCap(undefined).pass(record("a"))).toBe(true);
    });
});

describe("dataops dbt: arguments and user", () => {
    it("GIVEN options then dbt's words WHEN split THEN ours are taken and the rest goes to dbt untouched", () => {
        expect(splitDbtArgs(["--user", "alice", "build", "--select", "stg_x"])).toEqual({ user: "alice", rest: ["build", "--select", "stg_x"] });
        expect(splitDbtArgs(["--branch=feature/a", "--", "--version"])).toEqual({ branch: "feature/a", rest: ["--version"] });
        expect(splitDbtArgs(["build", "--user", "x"])).toEqual({ rest: ["build", "--user", "x"] });
        expect(() => splitDbtArgs(["--user"])).toThrow(new UsageError("--user needs a value"));
    });

    it("GIVEN the users WHEN no --user is given THEN the one user whose role writes runs dbt", () => {
        expect(defaultDbtUser(outputs())).toBe("alice");
        const none = outputs();
        const readers = { ...none, environment: { ...none.environment, users: { bob: none.environment.users.bob } } };
        expect(() => defaultDbtUser(readers)).toThrow("no user of br-feature-a_951d42dc has a role that writes; give --user NAME (users: bob)");
    });
});

describe("the SQL engine's retries", () => {
    it("GIVEN PostgreSQL's concurrency aborts WHEN classified THEN they are retried, and nothing else is", () => {
        expect(isConcurrencyAbort({ code: "40P01", message: "deadlock detected" })).toBe(true);
        expect(isConcurrencyAbort({ code: "XX000", message: "tuple concurrently updated" })).toBe(true);
        expect(isConcurrencyAbort({ code: "40001" })).toBe(true);
        expect(isConcurrencyAbort({ code: "42501", message: "permission denied" })).toBe(false);
        expect(isConcurrencyAbort({ code: "2BP01" })).toBe(false);
    });
});

describe("a failed up: said once, with what to do", () => {
    const engineError = new Error(
        [
            "code: -2",
            " stdout: ",
            " stderr: Command failed with exit code 255: pulumi up --stack br-x",
            "error: getaddrinfo ENOTFOUND branches-pg.internal.acme.example",
            "error: update failed",
            " err?: Error: Command failed with exit code 255: pulumi up --stack br-x",
            "error: getaddrinfo ENOTFOUND branches-pg.internal.acme.example",
            "error: update failed",
        ].join("\n"),
    );
    const server = { host: "branches-pg.internal.acme.example", port: 5432, adminUser: "dataops_admin", sslMode: "require" as const };

    it("GIVEN the engine's error repeated three times WHEN condensed THEN each error line appears once", () => {
        expect(failureLines(engineError)).toEqual(["error: getaddrinfo ENOTFOUND branches-pg.internal.acme.example"]);
        expect(failureLines(new Error("plain message"))).toEqual(["plain message"]);
    });

    it("GIVEN an unreachable branch server WHEN advised THEN one paragraph names the key, the host and the next step", () => {
        expect(adviceFor(engineError, { command: "up", branch: "feature/a", branchServer: server })).toBe(
            "The branch server branches-pg.internal.acme.example:5432 (dataops:branches.server in Pulumi.prod.yaml) could not be reached from here. Check that this runner can reach that host and port (network, firewall, VPN), or point dataops:branches.server at a server it can reach; to try the change on your machine instead, run npm run up (the embedded server).",
        );
        expect(adviceFor(new Error('password authentication failed for user "dataops_admin"'), { command: "up", branchServer: server })).toContain("DATAOPS_SERVER_ADMIN_PASSWORD is not its password");
        expect(adviceFor(engineError, { command: "up" })).toBeUndefined();
    });

    it("GIVEN a failed up WHEN its summary is written THEN it says what failed and what to do, for the merge request", () => {
        const md = failureSummaryMarkdown("br-feature-a_951d42dc", engineError, { command: "up", branch: "feature/a", branchServer: server });
        expect(md.startsWith("<!-- dataops-summary -->\n### Branch environment `br-feature-a_951d42dc`: the update failed")).toBe(true);
        expect(md).toContain("```\nerror: getaddrinfo ENOTFOUND branches-pg.internal.acme.example\n```");
        expect(md).toContain("(dataops:branches.server in Pulumi.prod.yaml) could not be reached from here");
        expect(md).toContain("Retry by hand: `npx dataops up --branch feature/a`");
    });
});

describe("which SQL engine a branch stack gets", () => {
    const home = (withPlugin: boolean) => {
        const dir = mkdtempSync(join(tmpdir(), "dataops-home-"));
        mkdirSync(join(dir, "plugins"));
        if (withPlugin) mkdirSync(join(dir, "plugins", "resource-postgresql-v3.18.0"));
        return dir;
    };

    it("GIVEN no choice WHEN the postgresql plugin is installed or not THEN provider where it is, sql where it is not, chosen once at creation", () => {
        expect(sqlEngineChoice({ PULUMI_HOME: home(true) })).toEqual({ engine: "provider", explicit: false });
        expect(sqlEngineChoice({ PULUMI_HOME: home(false) })).toEqual({ engine: "sql", explicit: false });
    });

    it("GIVEN DATAOPS_SQL_ENGINE WHEN set THEN it wins and is applied on every up; a wrong value is refused, naming it", () => {
        expect(sqlEngineChoice({ PULUMI_HOME: home(false), DATAOPS_SQL_ENGINE: "provider" })).toEqual({ engine: "provider", explicit: true });
        expect(sqlEngineChoice({ PULUMI_HOME: home(true), DATAOPS_SQL_ENGINE: "sql" })).toEqual({ engine: "sql", explicit: true });
        expect(() => sqlEngineChoice({ DATAOPS_SQL_ENGINE: "terraform" })).toThrow(new EngineRefused('DATAOPS_SQL_ENGINE: allowed provider | sql, given "terraform"'));
    });
});
