import { DefaultAzureCredential, ManagedIdentityCredential, type TokenCredential } from '@azure/identity';
import { describe, expect, it } from 'vitest';
import { isRoutingError } from '../../src/lib/errors.js';
import { blobServiceClientFromSettings } from '../../src/lib/storage/azureBlobStore.js';
import { AZURITE_ACCOUNT_KEY, azuriteConnectionString } from '../support/azurite.js';
import { installManagedIdentityEndpoint } from '../support/managedIdentityEndpoint.js';

/** Settings resolution: no storage request is sent; tokens come from a loopback managed identity endpoint. */

/** The SDK keeps a trailing slash on host-only URLs; it is not significant. */
const endpoint = (url: string) => url.replace(/\/$/, '');

function configError(run: () => unknown): Error {
  try {
    run();
  } catch (error) {
    expect(isRoutingError(error) && error.code).toBe('ConfigInvalid');
    return error as Error;
  }
  throw new Error('expected ConfigInvalid');
}

describe('blobServiceClientFromSettings', () => {
  it('accepts UseDevelopmentStorage=true (Azurite on its default port), case-insensitively', () => {
    for (const value of ['UseDevelopmentStorage=true', 'usedevelopmentstorage=True']) {
      const client = blobServiceClientFromSettings({ AzureWebJobsStorage: value });
      expect(endpoint(client.url)).toBe('http://127.0.0.1:10000/devstoreaccount1');
      expect(client.accountName).toBe('devstoreaccount1');
    }
  });

  it("accepts Azurite's explicit connection string and a custom connection name", () => {
    const client = blobServiceClientFromSettings(
      { ARCHIVE_STORAGE: azuriteConnectionString('http://127.0.0.1:41234/devstoreaccount1') },
      { connection: 'ARCHIVE_STORAGE' },
    );
    expect(endpoint(client.url)).toBe('http://127.0.0.1:41234/devstoreaccount1');
  });

  it('accepts an account-key connection string with an endpoint suffix', () => {
    const client = blobServiceClientFromSettings({
      AzureWebJobsStorage:
        `DefaultEndpointsProtocol=https;AccountName=iotarchive;AccountKey=${AZURITE_ACCOUNT_KEY};` +
        'EndpointSuffix=core.windows.net',
    });
    expect(endpoint(client.url)).toBe('https://iotarchive.blob.core.windows.net');
  });

  it('prefers a connection string over identity settings, as the Functions host does', () => {
    const client = blobServiceClientFromSettings({
      AzureWebJobsStorage: 'UseDevelopmentStorage=true',
      AzureWebJobsStorage__accountName: 'ignored',
    });
    expect(endpoint(client.url)).toBe('http://127.0.0.1:10000/devstoreaccount1');
  });

  it('builds an identity-based client from __accountName with DefaultAzureCredential', () => {
    const client = blobServiceClientFromSettings({ AzureWebJobsStorage__accountName: 'iotarchive' });
    expect(endpoint(client.url)).toBe('https://iotarchive.blob.core.windows.net');
    expect(client.credential).toBeInstanceOf(DefaultAzureCredential);
  });

  it('prefers __blobServiceUri, then __serviceUri, over __accountName', () => {
    const both = blobServiceClientFromSettings({
      AzureWebJobsStorage__blobServiceUri: 'https://custom.blob.core.usgovcloudapi.net/',
      AzureWebJobsStorage__serviceUri: 'https://other.blob.core.windows.net',
      AzureWebJobsStorage__accountName: 'iotarchive',
    });
    expect(endpoint(both.url)).toBe('https://custom.blob.core.usgovcloudapi.net');
    const serviceUri = blobServiceClientFromSettings(
      { ArchiveConnection__serviceUri: 'https://other.blob.core.windows.net' },
      { connection: 'ArchiveConnection' },
    );
    expect(endpoint(serviceUri.url)).toBe('https://other.blob.core.windows.net');
  });

  it('signs in as the identity the host would: user-assigned when __credential=managedidentity and __clientId say so', async () => {
    const identity = await installManagedIdentityEndpoint();
    try {
      const asked = async (settings: Record<string, string>) => {
        const { credential } = blobServiceClientFromSettings(settings);
        expect(credential).toBeInstanceOf(ManagedIdentityCredential);
        await (credential as TokenCredential).getToken(`https://storage-${identity.requests.length}.example/.default`);
        return identity.requests.at(-1);
      };
      expect(
        await asked({ AzureWebJobsStorage__accountName: 'iotarchive', AzureWebJobsStorage__credential: 'managedidentity' }),
      ).toMatchObject({ clientId: undefined, resourceId: undefined });
      expect(
        await asked({
          'AzureWebJobsStorage:accountName': 'iotarchive',
          'AzureWebJobsStorage:credential': 'ManagedIdentity',
          'AzureWebJobsStorage:clientId': '00000000-0000-0000-0000-000000000001',
        }),
      ).toMatchObject({ clientId: '00000000-0000-0000-0000-000000000001', resourceId: undefined });
    } finally {
      await identity.close();
    }
  });

  it('refuses a client id that is not one rather than signing in as another identity', () => {
    const error = configError(() =>
      blobServiceClientFromSettings({
        AzureWebJobsStorage__accountName: 'iotarchive',
        AzureWebJobsStorage__credential: 'managedidentity',
        AzureWebJobsStorage__clientId: 'iot-routing-identity',
      }),
    );
    expect(error.message).toContain('AzureWebJobsStorage__clientId: not a client ID');
    expect(error.message).not.toContain('iot-routing-identity');
  });

  it('uses a credential handed in by the caller', () => {
    const credential: TokenCredential = {
      getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 60_000 }),
    };
    const client = blobServiceClientFromSettings({ AzureWebJobsStorage__accountName: 'iotarchive' }, { credential });
    expect(client.credential).toBe(credential);
  });

  it('names the settings it looked for when nothing is configured', () => {
    const error = configError(() => blobServiceClientFromSettings({ AzureWebJobsStorage: '  ' }));
    expect(error.message).toContain('AzureWebJobsStorage__accountName');
    expect(error.message).toContain('AzureWebJobsStorage__blobServiceUri');
  });

  it('reports an invalid connection string without echoing it', () => {
    const secret = 'c2VjcmV0LWtleS12YWx1ZQ==';
    const error = configError(() =>
      blobServiceClientFromSettings({ AzureWebJobsStorage: `DefaultEndpointsProtocol=https;AccountKey=${secret}` }),
    );
    expect(error.message).toContain('AzureWebJobsStorage');
    expect(error.message).not.toContain(secret);
  });

  it('rejects a service URI that is not an http(s) URL', () => {
    configError(() => blobServiceClientFromSettings({ AzureWebJobsStorage__blobServiceUri: 'not a url' }));
    configError(() => blobServiceClientFromSettings({ AzureWebJobsStorage__blobServiceUri: 'ftp://x/' }));
  });
});
