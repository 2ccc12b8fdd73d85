/**
 * OVHcloud Secret Manager (OKMS), the one call the collector needs: read a secret's latest version.
 *
 * Implemented shape, from OVHcloud's guide "Using the Secret Manager with the REST API"
 * (https://help.ovhcloud.com/csm/en-gb-secret-manager-rest-api?id=kb_article_view&sysparm_article=KB0072879)
 * and the OKMS OpenAPI document shipped with OVH's Go SDK (github.com/ovh/okms-sdk-go,
 * .github/codegen/schemas/swagger.yaml, operation `GetSecretV2`, schema version 1.1.0):
 *
 *   GET {endpoint}/api/{okmsId}/v2/secret/{path}?includeData=true
 *   Authorization: Bearer {personal access token}           (security scheme `personalAccessToken`)
 *   200 GetSecretV2Response  {path, metadata: {currentVersion, ...}, version: {id, state, createdAt, data: {k: v}}}
 *   400/401/403/404/429/500  ErrorResponse {error_id, error_code, errors: [string], request_id}
 *
 * `{endpoint}` is the regional OKMS domain (https://eu-west-rbx.okms.ovh.net); `{path}` is one path parameter
 * (`prod/db`), sent percent-encoded as a whole (`prod%2Fdb`), as the SDK's generated client does. The
 * centralised API (`/v2/okms/resource/{okmsId}/secret/{path}` on api.ovh.com) is not used.
 *
 * Error messages name the endpoint, the OKMS id and the secret path, never the token or any secret data.
 */

export interface OkmsClientOptions {
  endpoint: string;
  okmsId: string;
  token: string;
  /** PEM CA bundle to trust instead of the system CAs. */
  ca?: string | undefined;
  timeoutMs: number;
  fetch?: typeof fetch | undefined;
}

/**
 * A failure to read a secret. `scope: "endpoint"` when it concerns every secret (bad token, unreachable
 * endpoint), `"secret"` when it concerns only this one.
 */
export class OkmsError extends Error {
  override readonly name = "OkmsError";
  constructor(
    message: string,
    readonly scope: "endpoint" | "secret",
  ) {
    super(message);
  }
}

/** The `data` map of the latest version of secret `path`. */
export async function getOkmsSecretData(
  o: OkmsClientOptions,
  path: string,
): Promise<Record<string, unknown>> {
  const base = o.endpoint.replace(/\/+$/, "");
  const url = `${base}/api/${encodeURIComponent(o.okmsId)}/v2/secret/${encodeURIComponent(path)}?includeData=true`;
  const doFetch = o.fetch ?? fetch;
  let res: Response;
  let body: string;
  try {
    res = await doFetch(url, {
      headers: { authorization: `Bearer ${o.token}`, accept: "application/json" },
      signal: AbortSignal.timeout(o.timeoutMs),
      redirect: "error",
      ...(o.ca ? { tls: { ca: o.ca } } : {}),
    });
    body = await res.text();
  } catch (e) {
    throw new OkmsError(transportProblem(e, base, o.timeoutMs), "endpoint");
  }
  if (res.status !== 200) throw statusProblem(res.status, body, o, path);
  const data = (parseJson(body) as { version?: { data?: unknown } } | undefined)?.version?.data;
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new OkmsError(
      `OVH Secret Manager returned no data for secret "${path}": check that its latest version is active`,
      "secret",
    );
  }
  return data as Record<string, unknown>;
}

function transportProblem(e: unknown, endpoint: string, timeoutMs: number): string {
  const err = e as { name?: string; code?: string; message?: string };
  if (err.name === "TimeoutError" || err.name === "AbortError") {
    const wait = timeoutMs >= 1000 ? `${timeoutMs / 1000} s` : `${timeoutMs} ms`;
    return `no answer from ${endpoint} within ${wait}: check that this machine can reach it (firewall, proxy, DNS), or raise /secrets/ovh/timeout`;
  }
  const code = err.code ?? err.name ?? "error";
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|TLS|SSL/i.test(code)) {
    return `cannot verify the TLS certificate of ${endpoint} (${code}): set /secrets/ovh/ca_file to the CA that signs it, or fix /secrets/ovh/endpoint`;
  }
  return `cannot reach ${endpoint} (${code}): check /secrets/ovh/endpoint and the network`;
}

function statusProblem(status: number, body: string, o: OkmsClientOptions, path: string): OkmsError {
  const requestId = (parseJson(body) as { request_id?: unknown } | undefined)?.request_id;
  const ref =
    typeof requestId === "string" && /^[\w-]{1,64}$/.test(requestId) ? `, request id ${requestId}` : "";
  switch (status) {
    case 401:
      return new OkmsError(
        `OVH Secret Manager refused the token (HTTP 401${ref}): set /secrets/ovh/token to a valid, unexpired personal access token`,
        "endpoint",
      );
    case 403:
      return new OkmsError(
        `OVH Secret Manager denied access to secret "${path}" (HTTP 403${ref}): grant the token's identity okms:apikms:secret/get and okms:apikms:secret/version/getData on it`,
        "secret",
      );
    case 404:
      return new OkmsError(
        `secret "${path}" was not found in OKMS domain ${o.okmsId} (HTTP 404${ref}): create it in OVHcloud Secret Manager, or fix the reference or /secrets/ovh/okms_id`,
        "secret",
      );
    case 429:
      return new OkmsError(
        `OVH Secret Manager is rate limiting this client (HTTP 429${ref}): retry in a minute`,
        "endpoint",
      );
    default:
      return new OkmsError(
        `OVH Secret Manager answered HTTP ${status}${ref} for secret "${path}": retry later${ref ? "; if it persists, give the request id to OVHcloud support" : ""}`,
        status >= 500 ? "endpoint" : "secret",
      );
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
