/**
 * First-boot setup: while no user exists, `POST /api/v1/setup` with the one-time setup code creates the first
 * tenant and the first superadmin. The code lives in `data_dir/secrets/setup-code` (0600), generated at start
 * while no user exists; the log names the file, never the code (the appliance console shows it). Once a user
 * exists the route answers 409 and the file is removed.
 */
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { Elysia, t } from "elysia";
import { checkPasswordPolicy, hashPassword } from "../../auth/passwords.ts";
import { safeEqual, sha256 } from "../../auth/secrets.ts";
import { issueSession } from "../../auth/sessions.ts";
import { dataSecret } from "../../security/keyring.ts";
import { withAdmin } from "../../storage/db.ts";
import type { ApiDeps } from "../deps.ts";
import { audit } from "../lib/audit.ts";
import { conflict, tooMany, unauthenticated } from "../lib/http-errors.ts";
import { sessionOptions } from "../lib/session-opts.ts";
import { clientIp } from "../principal.ts";
import { slugify } from "./tenants.ts";

export const setupCodeFile = (dataDir: string) => join(dataDir, "secrets", "setup-code");

export async function hasUsers(deps: ApiDeps): Promise<boolean> {
  const r = await withAdmin(deps.sql, (tx) => tx`select exists (select 1 from users) as e`);
  return r[0]?.e === true;
}

/** Creates the setup code file when no user exists (idempotent); removes it once one does. */
export async function prepareSetupCode(deps: ApiDeps): Promise<void> {
  const file = setupCodeFile(deps.dataDir);
  if (await hasUsers(deps)) {
    if (existsSync(file)) rmSync(file, { force: true });
    return;
  }
  // dataSecret writes 0600 once and reads it back later: 24 random bytes, base64
  dataSecret(deps.dataDir, "setup-code", 24);
  deps.log.warn(
    { file },
    `no user exists yet: create the first superadmin with POST /api/v1/setup and the setup code stored in ${file}`,
  );
}

export function setupRoutes(deps: ApiDeps) {
  const opts = sessionOptions(deps);
  return new Elysia({ name: "api/setup" }).post(
    "/api/v1/setup",
    async ({ body, request, server }) => {
      const ip = clientIp(deps, request, server);
      const tries = await deps.store.hit(`setup-fail:${ip}`, 15 * 60_000);
      if (tries.count > 10)
        throw tooMany("too many setup attempts from this address; wait 15 minutes", tries.resetMs);
      if (await hasUsers(deps)) throw conflict("setup is already done: sign in at /api/v1/auth/login");
      const file = setupCodeFile(deps.dataDir);
      const expected = existsSync(file) ? readFileSync(file, "utf8").trim() : "";
      if (!expected || !safeEqual(sha256(expected), sha256(body.setup_code.trim()))) {
        throw unauthenticated(`wrong setup code: read it from ${file} on the appliance (or its console)`);
      }
      checkPasswordPolicy(body.password);
      const hash = await hashPassword(body.password);
      const c = { ip, userAgent: request.headers.get("user-agent")?.slice(0, 512) ?? null };
      const out = await withAdmin(deps.sql, async (tx) => {
        await tx`lock table users in exclusive mode`;
        const [any] = await tx`select exists (select 1 from users) as e`;
        if (any?.e) throw conflict("setup is already done: sign in at /api/v1/auth/login");
        const [tenant] = await tx<{ id: string; name: string; slug: string }[]>`
          insert into tenants (name, slug) values (${body.tenant_name.trim()}, ${slugify(body.tenant_name)})
          returning id, name, slug`;
        const [user] = await tx<{ id: string; email: string; role: string; tenant_id: null }[]>`
          insert into users (email, password_hash, role, tenant_id, name)
          values (${body.email}, ${hash}, 'superadmin', null, ${body.name ?? null})
          returning id, email, role, tenant_id`;
        if (!tenant || !user) throw new Error("setup insert returned nothing");
        await audit(
          tx,
          { principal: { userId: user.id, actor: user.email } as never, tenantId: null, ...c },
          {
            action: "setup.completed",
            resourceType: "tenant",
            resourceId: tenant.id,
            new: { tenant, superadmin: user.email },
          },
        );
        const session = await issueSession(tx, opts, user, c);
        return { tenant, user, session };
      });
      rmSync(file, { force: true });
      deps.log.info({ tenant: out.tenant.slug }, "setup done: first superadmin created");
      return out;
    },
    {
      body: t.Object(
        {
          setup_code: t.String({ minLength: 1, maxLength: 200 }),
          email: t.String({ minLength: 3, maxLength: 254, pattern: "^[^@\\s]+@[^@\\s]+$" }),
          password: t.String({ maxLength: 256 }),
          tenant_name: t.String({ minLength: 1, maxLength: 200 }),
          name: t.Optional(t.String({ maxLength: 200 })),
        },
        { additionalProperties: false },
      ),
      detail: {
        summary: "First-boot setup: the first tenant and superadmin (one-time code)",
        tags: ["setup"],
      },
    },
  );
}
