// The contract checks' only way to the service: plain HTTP(S) requests with
// node:http, one fresh connection each (so a load balancer routes every
// request anew), and small parsers for what comes back.
import http, { type IncomingHttpHeaders } from 'node:http'
import https from 'node:https'

export interface HttpRequest {
  method?: string
  /** Path and query, appended to the base URL's path. */
  path: string
  headers?: Record<string, string>
  /** Sent as JSON with Content-Type application/json. */
  json?: unknown
  /** Sent as is; set the Content-Type yourself. */
  body?: string
}

export interface HttpResponse {
  status: number
  headers: IncomingHttpHeaders
  body: string
  /** The value of a header, several values joined with ", "; undefined when absent. */
  header(name: string): string | undefined
  setCookies(): SetCookie[]
}

export interface SetCookie {
  name: string
  value: string
  /** Attribute names lower-cased; flags (HttpOnly, Secure) are `true`. */
  attributes: Record<string, string | true>
}

export const USER_AGENT = 'tokenlab-contract'

export class HttpClient {
  private readonly base: URL

  constructor (baseUrl: string, private readonly timeoutMs = 10_000) {
    this.base = new URL(baseUrl)
    if (this.base.protocol !== 'http:' && this.base.protocol !== 'https:') throw new Error(`--url must be http:// or https://, not ${this.base.protocol}`)
  }

  /** Over https, where the cookie must be Secure. */
  get secure (): boolean {
    return this.base.protocol === 'https:'
  }

  /** The URL's path without a trailing slash ('' at the root): a cookie scoped to a route carries it in its Path. */
  get basePath (): string {
    return this.base.pathname.replace(/\/+$/, '')
  }

  request (options: HttpRequest): Promise<HttpResponse> {
    const method = options.method ?? 'GET'
    const payload = options.json !== undefined ? JSON.stringify(options.json) : options.body
    // Named, so that the logins a run makes are recognisable in GET /sessions.
    const headers: Record<string, string> = { 'user-agent': USER_AGENT }
    if (options.json !== undefined) headers['content-type'] = 'application/json'
    Object.assign(headers, options.headers)
    if (payload !== undefined) headers['content-length'] = String(Buffer.byteLength(payload))
    const basePath = this.basePath
    const transport = this.base.protocol === 'https:' ? https : http
    return new Promise((resolve, reject) => {
      const req = transport.request({
        protocol: this.base.protocol,
        hostname: this.base.hostname.replace(/^\[(.*)\]$/, '$1'),
        port: this.base.port,
        method,
        path: basePath + options.path,
        headers,
        agent: false,
        timeout: this.timeoutMs
      }, (res) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', reject)
        res.on('end', () => resolve(response(res.statusCode ?? 0, res.headers, Buffer.concat(chunks).toString('utf8'))))
      })
      req.on('timeout', () => req.destroy(new Error(`${method} ${options.path}: no answer in ${this.timeoutMs / 1000} s`)))
      req.on('error', (err: NodeJS.ErrnoException) => {
        reject(new Error(`${method} ${options.path}: ${err.code ?? err.message}`))
      })
      req.end(payload)
    })
  }
}

function response (status: number, headers: IncomingHttpHeaders, body: string): HttpResponse {
  return {
    status,
    headers,
    body,
    header (name) {
      const value = headers[name.toLowerCase()]
      return Array.isArray(value) ? value.join(', ') : value
    },
    setCookies () {
      const raw = headers['set-cookie']
      return (raw ?? []).map(parseSetCookie)
    }
  }
}

export function parseSetCookie (header: string): SetCookie {
  const [pair = '', ...attrs] = header.split(';').map((s) => s.trim())
  const eq = pair.indexOf('=')
  const attributes: Record<string, string | true> = {}
  for (const attr of attrs) {
    const i = attr.indexOf('=')
    if (i === -1) attributes[attr.toLowerCase()] = true
    else attributes[attr.slice(0, i).toLowerCase()] = attr.slice(i + 1)
  }
  return eq === -1 ? { name: pair, value: '', attributes } : { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes }
}

/** Parses a JSON body; undefined when it is not JSON. */
export function parseJson (body: string): unknown {
  try {
    return JSON.parse(body) as unknown
  } catch {
    return undefined
  }
}

export const jwtPattern = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/
export const sessionIdPattern = /^[A-Za-z0-9_-]{43}$/

export interface DecodedJwt {
  header: Record<string, unknown>
  payload: Record<string, unknown>
}

/** A JWT's header and payload, read without verifying anything (the checks have no key); undefined when it is not one. */
export function decodeJwt (token: string): DecodedJwt | undefined {
  if (!jwtPattern.test(token)) return undefined
  const [header, payload] = token.split('.').slice(0, 2).map((part) => parseJson(Buffer.from(part, 'base64url').toString('utf8')))
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
  return isObject(header) && isObject(payload) ? { header, payload } : undefined
}

export function base64urlJson (value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url')
}
