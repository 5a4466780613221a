// The docs stand on their own and keep up with the code: no tracked file
// points outside the repository, and docs/api.md names every setting, every
// error code and every route the app registers in each mode (README.md's
// configuration table names every setting too). A feature added without its
// docs fails here.
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { errorCodes } from '../plugins/errors.js'
import { configSchema } from '../src/config.js'
import { testApp, testDatabase } from './helpers.js'

const root = new URL('../', import.meta.url)
const read = (path: string) => readFileSync(new URL(path, root), 'utf8')
const apiDoc = read('docs/api.md')

/** Whether `text` names `phrase` as a whole (`GET /docs` is not found in `GET /docs/json`). */
function names (text: string, phrase: string): boolean {
  const escaped = phrase.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
  return new RegExp(`${escaped}(?![\\w/:*.{}-])`).test(text)
}

/** "METHOD /path" for every route in Fastify's route tree; the HEAD twin of a GET route is left out. */
function routesOf (app: FastifyInstance): string[] {
  const methodsByPath = new Map<string, string[]>()
  const segments: string[] = []
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    // e.g. "│   ├── exp/:staffId (GET, HEAD)": four characters of indent per level.
    const match = /^(.*?)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/.exec(line)
    if (match === null) continue
    segments.length = match[1]!.length / 4
    segments.push(match[2]!)
    if (match[3] !== undefined) methodsByPath.set(segments.join(''), match[3].split(', '))
  }
  return [...methodsByPath].flatMap(([path, methods]) => methods
    .filter((method) => method !== 'HEAD' || !methods.includes('GET'))
    .map((method) => `${method} ${path}`))
}

t.test('no tracked file refers to anything outside the repository', async (t) => {
  // Assembled from pieces so that this file does not match itself.
  const outside = [['..', 'shared'].join('/'), ['shared', 'CON' + 'TRACT'].join('/'), ['SECURITY', 'NOTES'].join('-')]
  const files = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' })
    .split('\0').filter((f) => f !== '' && !f.startsWith('node_modules/') && existsSync(new URL(f, root)))
  t.ok(files.length > 50, `git lists the repository's files (${files.length})`)
  const offenders = files.flatMap((file) => {
    const text = read(file)
    return outside.filter((s) => text.includes(s)).map((s) => `${file}: ${s}`)
  })
  t.same(offenders, [], 'nothing points outside the repository')
})

t.test('every setting is in docs/api.md and in the README configuration table', async (t) => {
  const variables = Object.keys(configSchema.properties)
  t.ok(variables.includes('JWT_SECRET') && variables.length > 20, 'the schema lists the settings')
  const readme = read('README.md')
  const section = readme.slice(readme.indexOf('\n## Configuration\n'), readme.indexOf('\n## ', readme.indexOf('\n## Configuration\n') + 1))
  const table = section.split('\n').filter((line) => line.startsWith('|')).join('\n')
  t.same(variables.filter((v) => !apiDoc.includes(`\`${v}\``)), [], 'missing from docs/api.md')
  t.same(variables.filter((v) => !table.includes(`\`${v}\``)), [], 'missing from the README configuration table')
})

t.test('every error code is in docs/api.md', async (t) => {
  t.ok(errorCodes.length > 10, 'errors.ts lists the codes')
  t.same(errorCodes.filter((code) => !apiDoc.includes(`\`${code}\``)), [], 'missing from docs/api.md')
})

t.test('every route the app registers is in docs/api.md as "METHOD /path"', async (t) => {
  // Routes do not depend on the database kind: PGlite is enough.
  const testDb = await testDatabase(t, 'pglite')
  // Each mode with a route only that mode registers, so a mode whose settings were ignored cannot pass unnoticed.
  const modes: Array<[string, Record<string, string>, string]> = [
    ['jwt', { AUTH_MODE: 'jwt' }, 'POST /login'],
    ['jwt + JWT_REVOCATION=on', { AUTH_MODE: 'jwt', JWT_REVOCATION: 'on' }, 'DELETE /sessions'],
    ['jwt + JWT_REFRESH=on', { AUTH_MODE: 'jwt', JWT_REFRESH: 'on' }, 'POST /refresh'],
    ['jwt + JWT_REFRESH=on + JWT_REVOCATION=on', { AUTH_MODE: 'jwt', JWT_REFRESH: 'on', JWT_REVOCATION: 'on' }, 'POST /refresh'],
    ['session', { AUTH_MODE: 'session' }, 'GET /sessions']
  ]
  for (const [mode, env, own] of modes) {
    const app = await testApp(t, testDb, { env })
    const routes = routesOf(app)
    t.ok(routes.includes(own) && routes.includes('GET /exp/:staffId'), `${mode}: the route list is read (${routes.length} routes, ${own} among them)`)
    t.same(routes.filter((route) => !names(apiDoc, route)), [], `${mode}: missing from docs/api.md`)
  }
})
