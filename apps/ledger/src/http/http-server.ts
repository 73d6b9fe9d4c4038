import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ContractError, DomainError, ledgerIdSchema, parseOrThrow, statementRequest } from '@mesh/contracts';
import { encodeJson, toErrorBody } from '@mesh/runtime';
import type { LedgerQueries } from '../projection/queries';

/** Longest URL accepted (ids are at most 64 characters): anything longer is refused, not parsed. */
const URL_MAX_LENGTH = 512;

export interface LedgerHttpOptions {
  host: string;
  port: number;
}

export interface LedgerHttpServer {
  readonly port: number;
  close(): Promise<void>;
}

type Route = (params: string[], query: URLSearchParams) => unknown;

/**
 * A small read-only JSON server over the ledger projections, for curl and dashboards. GET only;
 * the same answers as the `mesh.query.ledger.*` subjects: `{ ok: true, data }` or
 * `{ ok: false, error }` with 400 (bad input), 404 (unknown wallet or route) or 500.
 */
export async function startLedgerHttpServer(queries: LedgerQueries, audit: () => Promise<unknown>, options: LedgerHttpOptions): Promise<LedgerHttpServer> {
  const id = (value: string, field: string) => parseOrThrow(ledgerIdSchema, decodeURIComponent(value), field);
  const routes: [RegExp, Route][] = [
    [/^\/wallets\/([^/]+)\/balance$/, ([w]) => queries.balance(id(w, 'walletId'))],
    [
      /^\/wallets\/([^/]+)\/statement$/,
      ([w], q) => {
        const body = parseOrThrow(
          statementRequest.schema,
          {
            walletId: decodeURIComponent(w),
            ...(q.has('limit') ? { limit: Number(q.get('limit')) } : {}),
            ...(q.has('afterRevision') ? { afterRevision: Number(q.get('afterRevision')) } : {}),
          },
          'statement',
        );
        return queries.statement(body.walletId, body.limit, body.afterRevision);
      },
    ],
    [/^\/tasks\/([^/]+)\/cost$/, ([t]) => queries.taskCost(id(t, 'taskId'))],
    [/^\/containers\/([^/]+)\/cost$/, ([c]) => queries.containerCost(id(c, 'containerId'))],
    [/^\/providers\/([^/]+)\/earnings$/, ([p]) => queries.providerEarnings(id(p, 'walletId'))],
    [/^\/providers\/earnings$/, () => queries.providerEarnings()],
    [/^\/totals$/, () => queries.totals()],
    [/^\/audit$/, () => audit()],
  ];

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown) => {
      const bytes = encodeJson(body);
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': bytes.length });
      res.end(bytes);
    };
    try {
      if (req.method !== 'GET')
        return send(405, { ok: false, error: { code: 'method_not_allowed', message: 'the ledger HTTP server is read-only: GET only' } });
      if ((req.url ?? '').length > URL_MAX_LENGTH)
        return send(414, { ok: false, error: { code: 'uri_too_long', message: `URL longer than ${URL_MAX_LENGTH} characters` } });
      const url = new URL(req.url ?? '/', 'http://ledger');
      for (const [pattern, route] of routes) {
        const match = pattern.exec(url.pathname);
        if (match) return send(200, { ok: true, data: await route(match.slice(1), url.searchParams) });
      }
      return send(404, { ok: false, error: { code: 'not_found', message: `no route ${url.pathname}; see docs/ledger.md` } });
    } catch (err) {
      const status =
        err instanceof ContractError || err instanceof URIError ? 400 : err instanceof DomainError ? (err.code === 'unknown_wallet' ? 404 : 400) : 500;
      return send(status, { ok: false, error: toErrorBody(err) });
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
