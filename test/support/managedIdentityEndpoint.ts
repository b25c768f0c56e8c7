/**
 * A loopback stand-in for the managed identity endpoint App Service and Azure Functions give an app
 * (`IDENTITY_ENDPOINT`, secured by the `IDENTITY_HEADER` secret), so the real @azure/identity
 * `ManagedIdentityCredential` (and the managed identity step of `DefaultAzureCredential`) runs unchanged against it:
 *
 * - `GET <endpoint>?api-version=2019-08-01&resource=<audience>[&client_id=<id> | &mi_res_id=<resource id>]`, as
 *   the platform defines it: a request without the `X-IDENTITY-HEADER` secret is answered 401;
 * - the answer is a token naming the identity it was issued for, `mi:system`, `mi:client:<id>` or
 *   `mi:resource:<resource id>`, so a service stand-in can accept exactly one identity's tokens;
 * - every request is recorded: which identity was asked for, and for which audience.
 *
 * Installing points this process's environment at the stand-in (and hides the `AZURE_*` variables that would let
 * `DefaultAzureCredential` sign in another way); `close()` restores it. MSAL picks the managed identity source once
 * per process (module instance) and keeps its address, so a test file installs one stand-in for all its tests.
 */

import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface IdentityTokenRequest {
  /** `client_id`: a user-assigned identity by client id. */
  clientId: string | undefined;
  /** `mi_res_id`: a user-assigned identity by resource id. */
  resourceId: string | undefined;
  /** The audience, e.g. `https://storage.azure.com`. */
  resource: string | undefined;
}

export interface ManagedIdentityEndpoint {
  readonly url: string;
  readonly requests: readonly IdentityTokenRequest[];
  close(): Promise<void>;
}

/** The token the stand-in issues for an identity: what a service stand-in should accept. */
export function identityToken(identity: { clientId?: string; resourceId?: string }): string {
  if (identity.clientId !== undefined) return `mi:client:${identity.clientId}`;
  if (identity.resourceId !== undefined) return `mi:resource:${identity.resourceId}`;
  return 'mi:system';
}

/** Environment variables through which another identity could be picked up; cleared while the stand-in runs. */
const COMPETING = [
  'AZURE_CLIENT_ID',
  'AZURE_TENANT_ID',
  'AZURE_CLIENT_SECRET',
  'AZURE_CLIENT_CERTIFICATE_PATH',
  'AZURE_FEDERATED_TOKEN_FILE',
  'AZURE_TOKEN_CREDENTIALS',
  'AZURE_USERNAME',
  'AZURE_PASSWORD',
  'MSI_ENDPOINT',
  'MSI_SECRET',
  'IMDS_ENDPOINT',
  'IDENTITY_SERVER_THUMBPRINT',
];

export async function installManagedIdentityEndpoint(): Promise<ManagedIdentityEndpoint> {
  const secret = randomBytes(16).toString('hex');
  const requests: IdentityTokenRequest[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    if (req.method !== 'GET' || url.pathname !== '/msi/token' || req.headers['x-identity-header'] !== secret) {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'unauthorized', error_description: 'missing or wrong X-IDENTITY-HEADER' }));
      return;
    }
    const request: IdentityTokenRequest = {
      clientId: url.searchParams.get('client_id') ?? undefined,
      resourceId: url.searchParams.get('mi_res_id') ?? undefined,
      resource: url.searchParams.get('resource') ?? undefined,
    };
    requests.push(request);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(
      JSON.stringify({
        access_token: identityToken({
          ...(request.clientId === undefined ? {} : { clientId: request.clientId }),
          ...(request.resourceId === undefined ? {} : { resourceId: request.resourceId }),
        }),
        expires_on: String(Math.floor(Date.now() / 1000) + 3600),
        resource: request.resource,
        token_type: 'Bearer',
      }),
    );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/msi/token`;

  const saved = new Map<string, string | undefined>();
  for (const name of [...COMPETING, 'IDENTITY_ENDPOINT', 'IDENTITY_HEADER']) {
    saved.set(name, process.env[name]);
    delete process.env[name];
  }
  process.env['IDENTITY_ENDPOINT'] = url;
  process.env['IDENTITY_HEADER'] = secret;

  return {
    url,
    requests,
    async close() {
      for (const [name, value] of saved) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
