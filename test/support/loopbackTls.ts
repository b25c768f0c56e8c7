/**
 * TLS for loopback stand-ins that the Azure SDKs must reach over TLS: they refuse Microsoft Entra tokens over plain
 * HTTP or non-TLS AMQP, so a test of an identity-based connection needs a stand-in that serves TLS on
 * `127.0.0.1:PORT` with a throw-away certificate, and an SDK that trusts it without being told.
 *
 * Trusting the certificate: the SDKs build their TLS options themselves (rhea's `tls.connect(port, host, options)`
 * for AMQP, `https.Agent`'s `tls.connect(options)` for HTTP) and our product code has no setting for a CA. While a
 * stand-in runs, `tls.connect` calls for exactly 127.0.0.1:PORT get the stand-in's certificate as their `ca`: one
 * level below the SDK, like a certificate added to the machine's store, confined to this test process and undone
 * when the stand-in closes. Verification itself stays on, so a wrong certificate (or a wrong port) still fails.
 */

import tls from 'node:tls';
import { createTestCertificate, type TestCertificate } from './iotHubTwinApi.js';

export { hasOpenssl, type TestCertificate } from './iotHubTwinApi.js';

/** A self-signed certificate for the loopback IP address the stand-ins listen on (subjectAltName `IP:127.0.0.1`). */
export function createLoopbackCertificate(): TestCertificate {
  return createTestCertificate('127.0.0.1');
}

type TlsConnect = typeof tls.connect;
const trustedPorts = new Map<number, string>();
let restoreConnect: (() => void) | undefined;

/** The port of a `tls.connect` call to 127.0.0.1, in either call shape; undefined for any other destination. */
function loopbackPort(host: unknown, port: unknown): number | undefined {
  if (host !== '127.0.0.1') return undefined;
  return typeof port === 'number' || typeof port === 'string' ? Number(port) : undefined;
}

/**
 * Adds `ca` as the certificate authority of TLS connections to 127.0.0.1:`port` only (see the file comment), until
 * the returned function is called. Every other call shape and destination is untouched.
 */
export function trustForLoopbackPort(port: number, ca: string): () => void {
  trustedPorts.set(port, ca);
  if (restoreConnect === undefined) {
    const original: TlsConnect = tls.connect;
    const call = (self: unknown, args: unknown[]): tls.TLSSocket => (original as (...a: unknown[]) => tls.TLSSocket).apply(self, args);
    const patched = function (this: unknown, ...args: unknown[]): tls.TLSSocket {
      const [first, second, third] = args;
      // rhea: tls.connect(port, host, options, callback)
      const positional = loopbackPort(second, first);
      const positionalCa = positional === undefined ? undefined : trustedPorts.get(positional);
      if (positionalCa !== undefined && typeof third === 'object' && third !== null) {
        return call(this, [first, second, { ...third, ca: positionalCa }, ...args.slice(3)]);
      }
      // https.Agent: tls.connect(options[, callback])
      if (typeof first === 'object' && first !== null) {
        const options = first as { host?: unknown; port?: unknown };
        const port = loopbackPort(options.host, options.port);
        const optionsCa = port === undefined ? undefined : trustedPorts.get(port);
        if (optionsCa !== undefined) return call(this, [{ ...options, ca: optionsCa }, ...args.slice(1)]);
      }
      return call(this, args);
    };
    (tls as { connect: TlsConnect }).connect = patched as TlsConnect;
    restoreConnect = () => {
      (tls as { connect: TlsConnect }).connect = original;
    };
  }
  return () => {
    trustedPorts.delete(port);
    if (trustedPorts.size === 0 && restoreConnect !== undefined) {
      restoreConnect();
      restoreConnect = undefined;
    }
  };
}
