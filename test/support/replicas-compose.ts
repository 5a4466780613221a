// docker-compose.yml as plain data, for the static test (compose.test.ts)
// and for the replicas test, which runs the compose migrate job's command.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { parse } from 'yaml'

export const composePath = fileURLToPath(new URL('../../docker-compose.yml', import.meta.url))

export type Dict = Record<string, unknown>
export const dict = (value: unknown): Dict => (value !== null && typeof value === 'object' && !Array.isArray(value) ? value as Dict : {})
export const list = (value: unknown): unknown[] => (Array.isArray(value) ? value : [])

export function readCompose (): { text: string, compose: Dict, services: Dict } {
  const text = readFileSync(composePath, 'utf8')
  const compose = dict(parse(text))
  return { text, compose, services: dict(compose.services) }
}

/** A service's environment as a map, from either Compose form (map or KEY=value list). */
export function environment (svc: Dict): Record<string, string> {
  const env = svc.environment
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((e) => String(e)).map((e) => [e.split('=')[0]!, e.slice(e.indexOf('=') + 1)]))
  }
  return Object.fromEntries(Object.entries(dict(env)).map(([k, v]) => [k, v === null ? '' : String(v)]))
}

/** depends_on as {service: condition}, from either Compose form. */
export function dependsOn (svc: Dict): Record<string, string> {
  const deps = svc.depends_on
  if (Array.isArray(deps)) return Object.fromEntries(deps.map((d) => [String(d), 'service_started']))
  return Object.fromEntries(Object.entries(dict(deps)).map(([k, v]) => [k, String(dict(v).condition ?? 'service_started')]))
}

/** Bind mounts and named volumes as [source, target] pairs, from either Compose form. */
export function mounts (svc: Dict): Array<[string, string]> {
  return list(svc.volumes).map((v) => {
    if (typeof v === 'string') {
      const [source, target] = v.split(':')
      return [source ?? '', target ?? '']
    }
    return [String(dict(v).source ?? ''), String(dict(v).target ?? '')]
  })
}

/** A `command:` as an argv (the list form), or the string form run by sh -c. */
export function commandArgv (svc: Dict): string[] {
  if (Array.isArray(svc.command)) return svc.command.map(String)
  if (typeof svc.command === 'string') return ['sh', '-c', svc.command]
  return []
}
