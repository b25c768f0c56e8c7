/**
 * The credential of an identity-based connection, chosen from its app settings as the Functions host chooses it.
 * Each choice is checked by what the real @azure/identity credential does: it asks a loopback App Service managed
 * identity endpoint (IDENTITY_ENDPOINT) for a token, and the stand-in records which identity it was asked for.
 */
import { ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectionCredential, connectionCredentialProblems } from '../src/lib/connectionCredential.js';
import { isRoutingError } from '../src/lib/errors.js';
import { installManagedIdentityEndpoint, type ManagedIdentityEndpoint } from './support/managedIdentityEndpoint.js';

const CLIENT_ID = '6f1c2a4e-0b7d-4c1e-9a35-2d8f0e7b9c41';
const RESOURCE_ID =
  '/subscriptions/0b1c2d3e-4f50-4a6b-8c7d-9e0f1a2b3c4d/resourceGroups/iot-routing-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/iot-routing-app';

// One endpoint for the file: MSAL detects the managed identity source once per process and keeps its address.
let endpoint: ManagedIdentityEndpoint;
beforeAll(async () => {
  endpoint = await installManagedIdentityEndpoint();
});
afterAll(async () => {
  await endpoint.close();
});

/** A fresh audience per request, so that no credential answers from a token cached for an earlier test. */
let audiences = 0;
async function identityAskedFor(credential: TokenCredential): Promise<{ clientId?: string; resourceId?: string }> {
  const audience = `https://resource-${++audiences}.example`;
  const token = await credential.getToken(`${audience}/.default`);
  expect(token?.token).toMatch(/^mi:/);
  const requests = endpoint.requests.filter((r) => r.resource === audience);
  expect(requests).toHaveLength(1);
  const { clientId, resourceId } = requests[0]!;
  return { ...(clientId === undefined ? {} : { clientId }), ...(resourceId === undefined ? {} : { resourceId }) };
}

function configError(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    if (isRoutingError(error) && error.code === 'ConfigInvalid') return error.message;
    throw error;
  }
  throw new Error('expected ConfigInvalid');
}

describe('connectionCredential', () => {
  it('signs in as the user-assigned identity named by __clientId when __credential=managedidentity', async () => {
    const credential = connectionCredential(
      { SERVICEBUS_CONNECTION__credential: 'managedidentity', SERVICEBUS_CONNECTION__clientId: CLIENT_ID },
      'SERVICEBUS_CONNECTION',
    );
    expect(credential).toBeInstanceOf(ManagedIdentityCredential);
    expect(await identityAskedFor(credential)).toEqual({ clientId: CLIENT_ID });
  });

  it('reads the value of __credential without regard to case, and local.settings.json-style names with ":"', async () => {
    const credential = connectionCredential(
      { 'ACS_ENDPOINT:credential': 'ManagedIdentity', 'ACS_ENDPOINT:clientId': ` ${CLIENT_ID} ` },
      'ACS_ENDPOINT',
    );
    expect(credential).toBeInstanceOf(ManagedIdentityCredential);
    expect(await identityAskedFor(credential)).toEqual({ clientId: CLIENT_ID });
  });

  it("reads property names without regard to case, as the host's configuration does: __clientID names the identity", async () => {
    // The Functions docs spell it `clientID` ("a user-assigned identity can be specified with the credential and
    // clientID properties"); the host finds it case-insensitively, so must we, or we sign in as another identity.
    const credential = connectionCredential(
      { AzureWebJobsStorage__Credential: 'managedidentity', AzureWebJobsStorage__clientID: CLIENT_ID },
      'AzureWebJobsStorage',
    );
    expect(credential).toBeInstanceOf(ManagedIdentityCredential);
    expect(await identityAskedFor(credential)).toEqual({ clientId: CLIENT_ID });
    expect(connectionCredentialProblems({ X__credential: 'managedidentity', X__ClientID: 'iot-routing-app' }, 'X')).toEqual([
      expect.stringMatching(/^X__clientId: not a client ID/),
    ]);
  });

  it('signs in as the user-assigned identity named by __managedIdentityResourceId', async () => {
    const credential = connectionCredential(
      { IOTHUB_SERVICE_CONNECTION__credential: 'managedidentity', IOTHUB_SERVICE_CONNECTION__managedIdentityResourceId: RESOURCE_ID },
      'IOTHUB_SERVICE_CONNECTION',
    );
    expect(credential).toBeInstanceOf(ManagedIdentityCredential);
    expect(await identityAskedFor(credential)).toEqual({ resourceId: RESOURCE_ID });
  });

  it('signs in as the system-assigned identity when __credential=managedidentity names none', async () => {
    const credential = connectionCredential({ AzureWebJobsStorage__credential: 'managedidentity' }, 'AzureWebJobsStorage');
    expect(credential).toBeInstanceOf(ManagedIdentityCredential);
    expect(await identityAskedFor(credential)).toEqual({});
  });

  it("reads only its own connection: another connection's client id is not used", async () => {
    const credential = connectionCredential(
      { AzureWebJobsStorage__credential: 'managedidentity', IOTHUB_SERVICE_CONNECTION__clientId: CLIENT_ID },
      'AzureWebJobsStorage',
    );
    expect(await identityAskedFor(credential)).toEqual({});
  });

  it('falls back to DefaultAzureCredential, which in Azure is the system-assigned identity, when nothing is set', async () => {
    const credential = connectionCredential({}, 'SERVICEBUS_CONNECTION');
    expect(credential).toBeInstanceOf(DefaultAzureCredential);
    expect(await identityAskedFor(credential)).toEqual({});
  });

  it('hands __clientId without __credential to DefaultAzureCredential as its managed identity, as the host does', async () => {
    const credential = connectionCredential({ ACS_ENDPOINT__clientId: CLIENT_ID }, 'ACS_ENDPOINT');
    expect(credential).toBeInstanceOf(DefaultAzureCredential);
    expect(await identityAskedFor(credential)).toEqual({ clientId: CLIENT_ID });
  });

  it('uses a service principal for local development when __tenantId, __clientId and __clientSecret are set', () => {
    const credential = connectionCredential(
      {
        AzureWebJobsStorage__tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47',
        AzureWebJobsStorage__clientId: CLIENT_ID,
        AzureWebJobsStorage__clientSecret: 'not-a-real-secret',
      },
      'AzureWebJobsStorage',
    );
    expect(credential).toBeInstanceOf(ClientSecretCredential);
  });

  it('refuses settings that name no identity or two, listing each problem without echoing values', () => {
    const notAGuid = 'iot-routing-app-identity';
    const message = configError(() =>
      connectionCredential(
        {
          SERVICEBUS_CONNECTION__credential: 'managedidentityasfederatedidentity',
          SERVICEBUS_CONNECTION__clientId: notAGuid,
          SERVICEBUS_CONNECTION__managedIdentityResourceId: 'iot-routing-app',
          SERVICEBUS_CONNECTION__clientSecret: 'super-secret-value',
        },
        'SERVICEBUS_CONNECTION',
      ),
    );
    expect(message).toContain('SERVICEBUS_CONNECTION__credential: expected managedidentity');
    expect(message).toContain('SERVICEBUS_CONNECTION__clientId: not a client ID (a GUID');
    expect(message).toContain('SERVICEBUS_CONNECTION__managedIdentityResourceId: expected /subscriptions/');
    expect(message).toContain('SERVICEBUS_CONNECTION__clientId and SERVICEBUS_CONNECTION__managedIdentityResourceId are both set');
    for (const value of [notAGuid, 'managedidentityasfederatedidentity', 'super-secret-value']) expect(message).not.toContain(value);
  });
});

describe('connectionCredentialProblems', () => {
  it('accepts a client id, a resource id, or neither', () => {
    for (const settings of [
      {},
      { X__credential: 'managedidentity' },
      { X__credential: 'managedidentity', X__clientId: CLIENT_ID.toUpperCase() },
      { X__credential: 'managedidentity', X__managedIdentityResourceId: RESOURCE_ID.toLowerCase() },
      { X__clientId: CLIENT_ID },
    ]) {
      expect(connectionCredentialProblems(settings, 'X'), JSON.stringify(settings)).toEqual([]);
    }
  });

  it('points a resource id given as the client id to __managedIdentityResourceId', () => {
    expect(connectionCredentialProblems({ X__credential: 'managedidentity', X__clientId: RESOURCE_ID }, 'X')).toEqual([
      expect.stringMatching(/^X__clientId: not a client ID .*; a resource ID goes in X__managedIdentityResourceId$/),
    ]);
  });

  it('refuses a client id and a resource id together, even when both are well-formed', () => {
    expect(
      connectionCredentialProblems({ X__credential: 'managedidentity', X__clientId: CLIENT_ID, X__managedIdentityResourceId: RESOURCE_ID }, 'X'),
    ).toEqual([expect.stringContaining('X__clientId and X__managedIdentityResourceId are both set: name the user-assigned identity one way')]);
  });
});
