/**
 * Which OpenAI-compatible endpoints `measure_speedup` may reach (its `endpoint` /
 * `endpointBaseline` arguments). An MCP client choosing URLs that the server then fetches is a
 * server-side request forgery risk (cloud metadata services, intranet hosts), so by default only
 * loopback hosts are allowed: 127.0.0.0/8, ::1 and `localhost`. Other servers are allowed only
 * when the operator started the server with `spec-decode serve --allow-endpoint URL_PREFIX`
 * (repeatable). A prefix is an http(s) URL; a URL matches when scheme, host and port are equal
 * and its path lies under the prefix's path (at a `/` boundary), so `http://gpu:8000` does not
 * admit `http://gpu:8000.evil` or `http://gpu.evil:8000`. Hosts are compared after WHATWG URL
 * normalization (`127.1` and `0x7f.0.0.1` are 127.0.0.1). Redirects are refused by the fetches
 * (see EndpointSpec.redirect), so an allowed server cannot bounce a request elsewhere.
 */
import { apiBase } from "../bench/remote.js";
import { InvalidOptionError } from "../errors.js";

export const ALLOW_ENDPOINT_FLAG = "--allow-endpoint";

/** Length cap on an endpoint URL argument (and on a prefix). */
export const ENDPOINT_URL_MAX = 2048;

function parseHttpUrl(raw: string, what: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new InvalidOptionError(`${what} "${raw.slice(0, 200)}" is not a URL; give the server's OpenAI base URL like http://127.0.0.1:8080/v1.`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new InvalidOptionError(`${what} must be an http(s) URL (got "${raw.slice(0, 200)}").`);
  if (u.username || u.password) throw new InvalidOptionError(`${what} must not carry credentials in the URL; pass apiKey instead.`);
  if (u.search || u.hash) throw new InvalidOptionError(`${what} must not have a query or fragment (got "${raw.slice(0, 200)}").`);
  return u;
}

/** 127.0.0.0/8, ::1 and localhost (hostname as the WHATWG URL parser normalizes it). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.toLowerCase();
  if (h === "localhost" || h === "[::1]") return true;
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

function pathUnder(path: string, prefix: string): boolean {
  const p = prefix.replace(/\/+$/, "");
  return p === "" || path === p || path.startsWith(`${p}/`);
}

/** Validate `--allow-endpoint` values at startup (a bad prefix is an error there, not a silent no-op). */
export function parseAllowedEndpoints(prefixes: readonly string[] = []): string[] {
  return prefixes.map((p) => {
    if (p.length > ENDPOINT_URL_MAX) throw new InvalidOptionError(`${ALLOW_ENDPOINT_FLAG} values are at most ${ENDPOINT_URL_MAX} characters.`);
    const u = parseHttpUrl(p, ALLOW_ENDPOINT_FLAG);
    return `${u.origin}${u.pathname.replace(/\/+$/, "")}`;
  });
}

/**
 * The OpenAI base URL (`.../v1`) for `url`, or an InvalidOptionError: not http(s), credentials,
 * or a host that is neither loopback nor under one of `allowed` (already parsed prefixes).
 */
export function checkEndpointUrl(url: string, argName: string, allowed: readonly string[]): string {
  const u = parseHttpUrl(url, argName);
  const base = apiBase(url);
  if (isLoopbackHost(u.hostname)) return base;
  const b = new URL(base);
  for (const prefix of allowed) {
    const p = new URL(prefix);
    if (p.origin === b.origin && pathUnder(b.pathname, p.pathname)) return base;
  }
  throw new InvalidOptionError(
    `${argName} ${u.origin} is not a loopback address; this MCP server only reaches 127.0.0.0/8, ::1 and localhost unless it was started with ` +
      `\`spec-decode serve ${ALLOW_ENDPOINT_FLAG} ${u.origin}\` (repeatable; the operator decides which servers MCP clients may measure).`,
  );
}
