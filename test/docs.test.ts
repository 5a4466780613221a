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

t.test('docs/comparison.md and docs/scaling.md hold the tables of the runs they quote, as the benchmarks wrote them', async (t) => {
  const { docsPages, fillNamedRegions, renderTables, unplacedRegions } = await import('../bench/report.js')
  const pages = docsPages.map((page) => ({ page, text: read(page) }))
  const runs: Array<[string, Record<string, string>]> = [
    ['npm run bench -- --write-docs', renderTables(JSON.parse(read('docs/bench-results.json')))],
    ['npm run bench:propagation -- --write-docs', JSON.parse(read('docs/propagation-results.json')).regions],
    ['npm run bench:scaling -- --write-docs', JSON.parse(read('docs/scaling-results.json')).regions]
  ]
  for (const [command, regions] of runs) {
    t.ok(Object.keys(regions).length >= 3, `${command}: its regions are read`)
    t.same(unplacedRegions(pages.map((p) => p.text), regions), [], `${command}: every region it writes has a place on a page`)
    for (const { page, text } of pages) t.equal(fillNamedRegions(text, regions), text, `${command}: ${page} holds its tables as the run kept them`)
  }
  for (const { page, text } of pages) t.notMatch(text, /\(written by npm run/, `${page}: no region still waits for a run`)
})

/** GitHub's anchor for a heading: lower case, punctuation but `_` and `-` dropped, spaces to hyphens. */
function anchorOf (heading: string): string {
  return heading.trim().toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-')
}

t.test('every link between the repository\'s Markdown files reaches a file, and a heading when it names one', async (t) => {
  const pages = execFileSync('git', ['ls-files', '-z', '*.md'], { cwd: root, encoding: 'utf8' }).split('\0').filter((f) => f !== '')
  const anchors = (file: string) => new Set(read(file).split('\n').filter((line) => /^#{1,6} /.test(line)).map((line) => anchorOf(line.replace(/^#+ /, ''))))
  let checked = 0
  const broken: string[] = []
  for (const page of pages) {
    for (const [, target] of read(page).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target!)) continue
      const [path, anchor] = target!.split('#') as [string, string | undefined]
      const file = path === '' ? page : new URL(path, new URL(page, root)).pathname.slice(new URL(root).pathname.length)
      checked++
      if (!existsSync(new URL(file, root))) broken.push(`${page}: ${target} (no file)`)
      else if (anchor !== undefined && file.endsWith('.md') && !anchors(file).has(anchor)) broken.push(`${page}: ${target} (no such heading)`)
    }
  }
  t.ok(checked > 50, `links read (${checked})`)
  t.same(broken, [], 'every relative link resolves')
})
