import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyHttpToken } from '@mesh/audit/http-token';
import { ContractError, DomainError, ledgerIdSchema, parseOrThrow, statementRequest, type Caller } from '@mesh/contracts';
import { encodeJson, toErrorBody } from '@mesh/runtime';
import type { LedgerReads } from '../access';

/** Longest URL accepted (ids are at most 64 characters): anything longer is refused, not parsed. */
const URL_MAX_LENGTH = 512;
/** Host names always served: the loopback names a browser cannot be rebound to from outside. */
const LOOPBACK_HOSTS: readonly string[] = ['localhost', '127.0.0.1', '[::1]'];

export interface LedgerHttpOptions {
  host: string;
  port: number;
  /** The key bearer tokens are checked against (httpTokenFor in libs/audit/src/http-token.ts). */
  tokenKey: Buffer;
  /** Host names served besides LOOPBACK_HOSTS (LEDGER_HTTP_ALLOWED_HOSTS), lower case. */
  allowedHosts: readonly string[];
}

export interface LedgerHttpServer {
  readonly port: number;
  close(): Promise<void>;
}

type Route = (caller: Caller, params: string[], query: URLSearchParams) => unknown;

/** The host name of a Host header without its port (`[::1]:8480` -> `[::1]`), lower case. */
function hostNameOf(header: string | undefined): string | undefined {
  if (!header) return undefined;
  const host = header.trim().toLowerCase();
  if (host.startsWith('[')) return host.includes(']') ? host.slice(0, host.indexOf(']') + 1) : undefined;
  return host.split(':', 1)[0];
}

/** Status of a refusal thrown by a route. */
function statusOf(err: unknown): number {
  if (err instanceof ContractError || err instanceof URIError) return 400;
  if (!(err instanceof DomainError)) return 500;
  return ({ unknown_wallet: 404, forbidden: 403, busy: 429 } as Record<string, number>)[err.code] ?? 400;
}

/**
 * A small read-only JSON server over the ledger projections, for curl and dashboards. GET only;
 * the same answers as the `mesh.query.ledger.*` subjects, with the same ownership rules:
 * `{ ok: true, data }` or `{ ok: false, error }` with 400 (bad input), 401 (no or a bad bearer
 * token), 403 (not the caller's wallet, or operator-only), 404 (unknown wallet or route), 421 (a
 * Host not served: DNS rebinding), 429 (an audit already running) or 500. Every request needs
 * `Authorization: Bearer <token>`; the token says who the caller is (verifyHttpToken).
 */
export async function startLedgerHttpServer(reads: LedgerReads, options: LedgerHttpOptions): Promise<LedgerHttpServer> {
  const id = (value: string, field: string) => parseOrThrow(ledgerIdSchema, decodeURIComponent(value), field);
  const allowedHosts = new Set([...LOOPBACK_HOSTS, ...options.allowedHosts]);
  const routes: [RegExp, Route][] = [
    [/^\/wallets\/([^/]+)\/balance$/, (caller, [w]) => reads.balance(caller, id(w, 'walletId'))],
    [
      /^\/wallets\/([^/]+)\/statement$/,
      (caller, [w], q) => {
        const body = parseOrThrow(
          statementRequest.schema,
          {
            walletId: decodeURIComponent(w),
            ...(q.has('limit') ? { limit: Number(q.get('limit')) } : {}),
            ...(q.has('afterRevision') ? { afterRevision: Number(q.get('afterRevision')) } : {}),
          },
          'statement',
        );
        return reads.statement(caller, body.walletId, body.limit, body.afterRevision);
      },
    ],
    [/^\/tasks\/([^/]+)\/cost$/, (caller, [t]) => reads.taskCost(caller, id(t, 'taskId'))],
    [/^\/containers\/([^/]+)\/cost$/, (caller, [c]) => reads.containerCost(caller, id(c, 'containerId'))],
    [/^\/providers\/([^/]+)\/earnings$/, (caller, [p]) => reads.providerEarnings(caller, id(p, 'walletId'))],
    [/^\/providers\/earnings$/, (caller) => reads.providerEarnings(caller)],
    [/^\/totals$/, (caller) => reads.totals(caller)],
    [/^\/audit$/, (caller) => reads.audit(caller)],
  ];

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      const bytes = encodeJson(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes.length, ...headers });
      res.end(bytes);
    };
    const refuse = (status: number, code: string, message: string, headers?: Record<string, string>) =>
      send(status, { ok: false, error: { code, message } }, headers);
    try {
      if (req.method !== 'GET')
        return send(405, { ok: false, error: { code: 'method_not_allowed', message: 'the ledger HTTP server is read-only: GET only' } });
      if ((req.url ?? '').length > URL_MAX_LENGTH)
        return send(414, { ok: false, error: { code: 'uri_too_long', message: `URL longer than ${URL_MAX_LENGTH} characters` } });
      // Before anything else: a page on another site whose name was rebound to this address sends its own Host.
      const host = hostNameOf(req.headers.host);
      if (host === undefined || !allowedHosts.has(host))
        return refuse(
          421,
          'host_not_allowed',
          `Host ${JSON.stringify(req.headers.host ?? '')} is not served: only localhost, 127.0.0.1, [::1] and the names in LEDGER_HTTP_ALLOWED_HOSTS (DNS rebinding protection)`,
        );
      const bearer = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
      const challenge = { 'www-authenticate': 'Bearer realm="mesh-ledger"' };
      if (!bearer)
        return refuse(401, 'unauthorized', 'an Authorization: Bearer <token> header is required (the operator gets one with `mesh ledger token`)', challenge);
      const caller = verifyHttpToken(options.tokenKey, bearer[1]);
      if (!caller) return refuse(401, 'unauthorized', 'the bearer token is not valid for this ledger', challenge);
      const url = new URL(req.url ?? '/', 'http://ledger');
      for (const [pattern, route] of routes) {
        const match = pattern.exec(url.pathname);
        if (match) return send(200, { ok: true, data: await route(caller, match.slice(1), url.searchParams) });
      }
      return send(404, { ok: false, error: { code: 'not_found', message: `no route ${url.pathname}; see docs/ledger.md` } });
    } catch (err) {
      return send(statusOf(err), { ok: false, error: toErrorBody(err) });
    }
  };

  const server: Server = createServer((req, res) => void handle(req, res));
  server.headersTimeout = 10_000;
  server.requestTimeout = 60_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
