// deploy/nginx.conf as the tests run it: the compose file's config with only
// the three lines that depend on where things run replaced, so a change to the
// proxy behaviour (headers, retries, timeouts, upstreams, routes) is tested as is.
import { accessSync, constants, readFileSync } from 'node:fs'
import { delimiter, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const nginxConfPath = fileURLToPath(new URL('../../deploy/nginx.conf', import.meta.url))

/** The compose listen line and the compose upstream server lines, exactly as deploy/nginx.conf has them. */
export const composeListen = /^(\s*)listen 80;[ \t]*$/gm
export const composeServer = /^(\s*)server api:3000 resolve((?: [a-z_]+=[0-9a-z]+)*);[ \t]*$/gm
export const composeReportsServer = /^(\s*)server reports:3100 resolve((?: [a-z_]+=[0-9a-z]+)*);[ \t]*$/gm

/**
 * The resource service's upstream when a test runs none: a server marked
 * `down`, so /whoami and /reports/ answer the JSON 503 and nginx never
 * connects to whatever else might listen on that port.
 */
const noReportsServer = '127.0.0.1:3100 down'

export function readNginxConf (): string {
  return readFileSync(nginxConfPath, 'utf8')
}

/**
 * deploy/nginx.conf with `listen 80;` replaced by `listen <listen>;`, every
 * `server api:3000 resolve …;` by one `server <address> …;` line per replica
 * (the failure settings kept), and `server reports:3100 resolve …;` by the
 * resource service's address (`reports`, host:port), or by a server marked
 * down when there is none.
 * Throws when the lines are not there (exactly one listen, at least one
 * server of each), so a renamed line cannot make the tests run some other config.
 */
export function localNginxConf (source: string, listen: string, servers: string[], reports?: string): string {
  const listens = source.match(composeListen) ?? []
  if (listens.length !== 1) throw new Error(`deploy/nginx.conf: expected exactly one "listen 80;" line, found ${listens.length}`)
  const upstreams = source.match(composeServer) ?? []
  if (upstreams.length === 0) throw new Error('deploy/nginx.conf: no "server api:3000 resolve …;" line to replace')
  const reportsUpstreams = source.match(composeReportsServer) ?? []
  if (reportsUpstreams.length === 0) throw new Error('deploy/nginx.conf: no "server reports:3100 resolve …;" line to replace')
  if (servers.length === 0) throw new Error('localNginxConf: no servers given')
  return source
    .replace(composeListen, (_line, indent: string) => `${indent}listen ${listen};`)
    .replace(composeServer, (_line, indent: string, settings: string) => servers.map((s) => `${indent}server ${s}${settings};`).join('\n'))
    .replace(composeReportsServer, (_line, indent: string, settings: string) => `${indent}server ${reports === undefined ? noReportsServer : reports + settings};`)
}

/** The nginx binary: Debian's /usr/sbin/nginx, else one on PATH; undefined when there is none. */
export function findNginx (): string | undefined {
  const candidates = ['/usr/sbin/nginx', ...(process.env.PATH ?? '').split(delimiter).filter((d) => d !== '').map((d) => join(d, 'nginx'))]
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK)
      return candidate
    } catch {
      // not here
    }
  }
  return undefined
}
