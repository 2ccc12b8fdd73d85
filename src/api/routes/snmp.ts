/**
 * SNMP credentials of the tenant. Secrets (v1/v2c community, v3 authentication and privacy passphrases) are
 * write-only: sealed with the keyring under `snmp_credentials.<column>:<id>` (see snmpSecretContext) and
 * never returned; reads say only whether each one is set. PATCH replaces the secrets it names and keeps the
 * others; the database's checks keep each version's required fields consistent (422 otherwise).
 */
import { Elysia, t } from "elysia";
import type { Keyring } from "../../security/keyring.ts";
import type { Tx } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { guardPlugin } from "../guard.ts";
import { audit } from "../lib/audit.ts";
import { notFound } from "../lib/http-errors.ts";
import { likePattern, list, PageQuery } from "../lib/list.ts";
import { IdParams, Name } from "../lib/params.ts";
import { inTenant } from "../lib/tx.ts";

export type SnmpSecret = "community" | "v3_auth_pass" | "v3_priv_pass";
/** Keyring context of a sealed SNMP secret: what a probe-assignment reader must use to open it. */
export const snmpSecretContext = (secret: SnmpSecret, id: string) => `snmp_credentials.${secret}:${id}`;

const COLS = `id, tenant_id, name, version, v3_username, v3_auth_proto, v3_priv_proto,
  community_encrypted is not null as has_community, v3_auth_pass_encrypted is not null as has_auth_pass,
  v3_priv_pass_encrypted is not null as has_priv_pass, created_at, updated_at`;

const Secret = t.String({ minLength: 1, maxLength: 256, description: "write-only" });
const AuthProto = t.Union(["MD5", "SHA", "SHA224", "SHA256", "SHA384", "SHA512"].map((p) => t.Literal(p)));
const PrivProto = t.Union(["DES", "AES", "AES192", "AES256"].map((p) => t.Literal(p)));
const Body = {
  name: Name,
  version: t.Union([t.Literal("v1"), t.Literal("v2c"), t.Literal("v3")]),
  community: t.Optional(Secret),
  v3_username: t.Optional(t.Nullable(t.String({ minLength: 1, maxLength: 200 }))),
  v3_auth_proto: t.Optional(t.Nullable(AuthProto)),
  v3_auth_pass: t.Optional(t.Nullable(Secret)),
  v3_priv_proto: t.Optional(t.Nullable(PrivProto)),
  v3_priv_pass: t.Optional(t.Nullable(Secret)),
};
type BodyT = {
  name?: string;
  version?: string;
  community?: string;
  v3_username?: string | null;
  v3_auth_proto?: string | null;
  v3_auth_pass?: string | null;
  v3_priv_proto?: string | null;
  v3_priv_pass?: string | null;
};

/** Sealed value for a secret in the body: undefined = keep, null = clear. */
function sealed(k: Keyring, body: BodyT, key: SnmpSecret, id: string): Uint8Array | null | undefined {
  const v = body[key];
  if (v === undefined) return undefined;
  if (v === null) return null;
  return k.seal(v, snmpSecretContext(key, id));
}

export function snmpRoutes(deps: ApiDeps) {
  const one = async (tx: Tx, id: string, lock = false) => {
    const [r] =
      await tx`select ${tx.unsafe(COLS)} from snmp_credentials where id = ${id} ${lock ? tx`for update` : tx``}`;
    if (!r) throw notFound("SNMP credential");
    return r;
  };
  const write = async (tx: Tx, id: string, b: BodyT, create: boolean, tenantId: string) => {
    const community = sealed(deps.keyring, b, "community", id);
    const auth = sealed(deps.keyring, b, "v3_auth_pass", id);
    const priv = sealed(deps.keyring, b, "v3_priv_pass", id);
    const keep = (v: unknown) => v === undefined;
    if (create) {
      await tx`
        insert into snmp_credentials (id, tenant_id, name, version, community_encrypted, v3_username, v3_auth_proto,
                                      v3_auth_pass_encrypted, v3_priv_proto, v3_priv_pass_encrypted)
        values (${id}, ${tenantId}, ${b.name ?? ""}, ${b.version ?? ""}, ${community ?? null}, ${b.v3_username ?? null},
                ${b.v3_auth_proto ?? null}, ${auth ?? null}, ${b.v3_priv_proto ?? null}, ${priv ?? null})`;
      return;
    }
    // v1/v2c carry no v3 fields and v3 no community: switching version clears what the new one does not use
    const v3 = b.version === "v3";
    const v12 = b.version === "v1" || b.version === "v2c";
    await tx`
      update snmp_credentials set
        name = coalesce(${b.name ?? null}, name),
        version = coalesce(${b.version ?? null}, version),
        community_encrypted = case when ${v3} then null when ${keep(community)} then community_encrypted
                                   else ${community ?? null}::bytea end,
        v3_username = case when ${v12} then null when ${keep(b.v3_username)} then v3_username
                           else ${b.v3_username ?? null} end,
        v3_auth_proto = case when ${v12} then null when ${keep(b.v3_auth_proto)} then v3_auth_proto
                             else ${b.v3_auth_proto ?? null} end,
        v3_auth_pass_encrypted = case when ${v12} then null when ${keep(auth)} then v3_auth_pass_encrypted
                                      else ${auth ?? null}::bytea end,
        v3_priv_proto = case when ${v12} then null when ${keep(b.v3_priv_proto)} then v3_priv_proto
                             else ${b.v3_priv_proto ?? null} end,
        v3_priv_pass_encrypted = case when ${v12} then null when ${keep(priv)} then v3_priv_pass_encrypted
                                      else ${priv ?? null}::bytea end
      where id = ${id}`;
  };

  return new Elysia({ name: "api/snmp", prefix: "/api/v1/snmp-credentials" })
    .use(guardPlugin(deps))
    .get(
      "/",
      ({ query, req }) =>
        inTenant(deps, req, (tx) =>
          list(tx, {
            from: tx`select ${tx.unsafe(COLS)} from snmp_credentials`,
            where: [
              ...(query.version ? [tx`version = ${query.version}`] : []),
              ...(query.q ? [tx`name ilike ${likePattern(query.q)}`] : []),
            ],
            sortable: ["name", "version", "created_at"],
            defaultSort: "name",
            query,
          }),
        ),
      {
        auth: "viewer",
        query: t.Object({
          ...PageQuery,
          version: t.Optional(t.Union([t.Literal("v1"), t.Literal("v2c"), t.Literal("v3")])),
          q: t.Optional(t.String({ maxLength: 200 })),
        }),
        detail: { summary: "List SNMP credentials (secrets are never returned)", tags: ["snmp"] },
      },
    )
    .get("/:id", ({ params, req }) => inTenant(deps, req, (tx) => one(tx, params.id)), {
      auth: "viewer",
      params: IdParams,
      detail: { summary: "Get an SNMP credential (without its secrets)", tags: ["snmp"] },
    })
    .post(
      "/",
      async ({ body, req, set }) => {
        const id = crypto.randomUUID();
        const r = await inTenant(deps, req, async (tx) => {
          await write(tx, id, body, true, req.tenantId);
          const row = await one(tx, id);
          await audit(tx, req, {
            action: "snmp_credential.create",
            resourceType: "snmp_credential",
            resourceId: id,
            new: row,
          });
          return row;
        });
        set.status = 201;
        return r;
      },
      {
        auth: "admin",
        body: t.Object(Body, { additionalProperties: false }),
        detail: {
          summary: "Create an SNMP credential (v1/v2c: community; v3: user, auth, privacy)",
          tags: ["snmp"],
        },
      },
    )
    .patch(
      "/:id",
      ({ params, body, req }) =>
        inTenant(deps, req, async (tx) => {
          const old = await one(tx, params.id, true);
          await write(tx, params.id, body, false, req.tenantId);
          const row = await one(tx, params.id);
          await audit(tx, req, {
            action: "snmp_credential.update",
            resourceType: "snmp_credential",
            resourceId: params.id,
            old,
            new: row,
          });
          return row;
        }),
      {
        auth: "admin",
        params: IdParams,
        body: t.Partial(t.Object(Body, { additionalProperties: false })),
        detail: {
          summary: "Update an SNMP credential (secrets named are replaced, others kept)",
          tags: ["snmp"],
        },
      },
    )
    .delete(
      "/:id",
      async ({ params, req, set }) => {
        await inTenant(deps, req, async (tx) => {
          const old = await one(tx, params.id, true);
          await tx`delete from snmp_credentials where id = ${params.id}`;
          await audit(tx, req, {
            action: "snmp_credential.delete",
            resourceType: "snmp_credential",
            resourceId: params.id,
            old,
          });
        });
        set.status = 204;
      },
      { auth: "admin", params: IdParams, detail: { summary: "Delete an SNMP credential", tags: ["snmp"] } },
    );
}
