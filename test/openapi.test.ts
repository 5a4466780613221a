// The OpenAPI document: docs/openapi.json and the client types are what the
// app serves; every operation follows the convention of plugins/openapi.ts;
// the security schemes follow the mode; and what it says about credentials
// is what a client gets.
import { readFile } from 'node:fs/promises'
import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { renderDocument } from '../plugins/openapi.js'
import { allRoutesConfig, allRoutesDocumentPath, apiTypes, documentPath, typesPath } from '../scripts/openapi.js'
import { demo, login, testApp, testDatabase } from './helpers.js'

interface Operation {
  operationId?: string
  tags?: string[]
  summary?: string
  description?: string
  security?: Array<Record<string, string[]>>
  parameters?: unknown[]
  requestBody?: { content: Record<string, { example?: unknown }> }
  responses: Record<string, {
    headers?: Record<string, unknown>
    content?: Record<string, { schema?: { $ref?: string }, example?: { statusCode?: number } }>
  }>
}

interface Document {
  info: { version: string, license?: { name: string } }
  tags: Array<{ name: string, description?: string }>
  paths: Record<string, Record<string, Operation>>
  components: { securitySchemes: Record<string, { type: string, in?: string, name?: string, description?: string }> }
}

async function servedDocument (app: FastifyInstance): Promise<Document> {
  const res = await app.inject({ url: '/openapi.json' })
  if (res.statusCode !== 200) throw new Error(`GET /openapi.json answered ${res.statusCode}`)
  return res.json()
}

function operations (document: Document): Array<[string, Operation]> {
  return Object.entries(document.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, operation]): [string, Operation] => [`${method.toUpperCase()} ${path}`, operation]))
}

const needsCredential = (operation: Operation) =>
  operation.security !== undefined && operation.security.length > 0 && operation.security.every((requirement) => Object.keys(requirement).length > 0)

const db = await testDatabase(t, 'pglite')

t.test('the committed document and types, from the default configuration (jwt mode)', async (t) => {
  const app = await testApp(t, db)
  const res = await app.inject({ url: '/openapi.json' })
  const document = res.json() as Document

  t.test('docs/openapi.json is the served document', async (t) => {
    const committed = await readFile(documentPath, 'utf8')
    t.equal(renderDocument(res.json()), committed, 'docs/openapi.json differs from GET /openapi.json: run `npm run openapi` and commit the result')
  })

  t.test('test/support/api-types.ts is generated from docs/openapi.json', async (t) => {
    const [committedDocument, committedTypes] = await Promise.all([readFile(documentPath, 'utf8'), readFile(typesPath, 'utf8')])
    t.equal(await apiTypes(committedDocument), committedTypes, 'test/support/api-types.ts is out of date: run `npm run openapi` and commit the result')
  })

  t.test('info: license and version as package.json says, a contact, and a server', async (t) => {
    const pkg = JSON.parse(await readFile(new URL('../package.json', import.meta.url), 'utf8')) as { version: string, license: string }
    t.equal(document.info.version, pkg.version)
    t.equal(document.info.license?.name, pkg.license)
    t.match(res.json(), { info: { contact: { name: String } }, servers: [{ url: '/' }] })
  })

  t.test('security schemes: the cookie by its configured name, and the Bearer JWT', async (t) => {
    t.match(document.components.securitySchemes.cookieAuth, { type: 'apiKey', in: 'cookie', name: 'token' })
    t.match(document.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: /RFC8725/ })
  })
})

t.test('GET /staff states its paging and bounds: limit, after, maxItems, name lengths', async (t) => {
  const document = await servedDocument(await testApp(t, db))
  const operation = document.paths['/staff']!.get! as Operation & { parameters: Array<{ name: string, in: string, required: boolean, schema: Record<string, unknown> }> }
  t.match(operation.parameters, [
    { name: 'limit', in: 'query', required: false, schema: { type: 'string', maxLength: 4, pattern: '^([1-9][0-9]{0,2}|1000)$' } },
    { name: 'after', in: 'query', required: false, schema: { type: 'string', maxLength: 10, pattern: String } }
  ])
  t.equal(operation.parameters.length, 2, 'no other parameter')
  t.ok(operation.responses['400'], 'documents 400 for bad paging input')
  const schema = (operation.responses['200']!.content!['application/json']!.schema as unknown) as { type: string, maxItems: number, items: { properties: Record<string, { maxLength?: number, pattern?: string }> } }
  t.equal(schema.type, 'array', 'still a plain array')
  t.equal(schema.maxItems, 1000, 'maxItems 1000')
  for (const name of ['personal', 'family']) {
    t.match(schema.items.properties[name], { maxLength: 200, pattern: String }, `${name}: a stated length and pattern`)
  }
  const namePattern = new RegExp(schema.items.properties.personal!.pattern!)
  t.ok(namePattern.test('Pärn') && namePattern.test(''), 'the name pattern takes real names, and an empty family name')
  t.notOk(namePattern.test('Ann\nMarie'), 'and no control character')
})

t.test('docs/openapi-all-routes.json is the document of the mode with every route', async (t) => {
  const app = await testApp(t, db, { env: allRoutesConfig })
  const served = renderDocument((await app.inject({ url: '/openapi.json' })).json())
  t.equal(served, await readFile(allRoutesDocumentPath, 'utf8'), 'docs/openapi-all-routes.json differs from GET /openapi.json with refresh and revocation on: run `npm run openapi` and commit the result')
})

// Every configuration that changes which routes exist or what they need: a
// route registered only under one of them is checked there.
const configurations: Array<Record<string, string>> = [{}, { AUTH_MODE: 'session' }, { JWT_REVOCATION: 'on' }, { JWT_REFRESH: 'on' }, { JWT_REFRESH: 'on', JWT_REVOCATION: 'on' }]

for (const env of configurations) {
  t.test(`the convention, ${JSON.stringify(env)}`, async (t) => {
    const app = await testApp(t, db, { env })
    const document = await servedDocument(app)

    t.test('every operation follows the convention', async (t) => {
      const defined = new Map(document.tags.map((tag) => [tag.name, tag.description ?? '']))
      const ids = new Set<string>()
      for (const [name, operation] of operations(document)) {
        t.match(operation.operationId, /^[a-z][A-Za-z0-9]+$/, `${name}: operationId`)
        t.notOk(ids.has(operation.operationId!), `${name}: operationId is unique`)
        ids.add(operation.operationId!)
        t.ok((operation.tags ?? []).length > 0, `${name}: tagged`)
        for (const tag of operation.tags ?? []) t.ok(defined.get(tag), `${name}: tag ${tag} is defined with a description`)
        t.ok(operation.summary, `${name}: summary`)
        t.ok(operation.description, `${name}: description`)
        t.ok(Array.isArray(operation.security), `${name}: declares its security requirement`)

        const statuses = Object.keys(operation.responses)
        t.ok(statuses.includes('500'), `${name}: documents 500`)
        if (needsCredential(operation)) t.ok(statuses.includes('401'), `${name}: needs a credential, so documents 401`)
        if (operation.parameters !== undefined || operation.requestBody !== undefined) t.ok(statuses.includes('400'), `${name}: takes input, so documents 400`)
        if (!name.startsWith('GET ')) {
          for (const status of ['400', '403', '413', '415']) t.ok(statuses.includes(status), `${name}: a state-changing method documents ${status}`)
        }
        for (const [type, media] of Object.entries(operation.requestBody?.content ?? {})) t.ok(media.example, `${name}: an example ${type} body`)
        for (const [status, response] of Object.entries(operation.responses)) {
          if (Number(status) < 400) {
            for (const [type, media] of Object.entries(response.content ?? {})) t.ok(media.example, `${name} ${status}: an example ${type} body`)
            continue
          }
          const media = response.content?.['application/json']
          t.equal(media?.schema?.$ref, '#/components/schemas/Error', `${name} ${status}: the error shape`)
          t.equal(media?.example?.statusCode, Number(status), `${name} ${status}: an example`)
          if (status === '429') t.ok(response.headers?.['Retry-After'], `${name} 429: Retry-After`)
        }
      }
      t.ok(ids.size >= 7, 'the operations are all there')
    })

    t.test('what the document says about credentials is what a client gets', async (t) => {
      for (const [name, operation] of operations(document)) {
        const [method, path] = name.split(' ') as [string, string]
        const res = await app.inject({ method: method as 'GET', url: path.replace(/\{[^}]+\}/g, '3') })
        if (needsCredential(operation)) {
          t.equal(res.statusCode, 401, `${name} without a credential`)
        } else {
          t.not(res.statusCode, 401, `${name} without a credential`)
        }
      }
    })

    t.test('the statuses the convention adds are ones a client can get', async (t) => {
      // Logged in, so that authentication is not what answers.
      const cookie = await login(app, demo.linda)
      const oversized = JSON.stringify({ filler: 'x'.repeat(17 * 1024) })
      for (const [name, operation] of operations(document)) {
        const [method, path] = name.split(' ') as ['GET' | 'POST', string]
        const url = path.replace(/\{[^}]+\}/g, '3')
        const statuses = Object.keys(operation.responses)
        const answer = async (headers: Record<string, string>, payload?: string) =>
          (await app.inject({ method, url, headers: { cookie, ...headers }, ...(payload !== undefined ? { payload } : {}) })).json()
        if (statuses.includes('403') && method !== 'GET') {
          t.match(await answer({ origin: 'https://elsewhere.example' }), { statusCode: 403, code: 'FORBIDDEN_ORIGIN' }, `${name}: 403 from another origin`)
        }
        if (statuses.includes('413')) {
          t.match(await answer({ 'content-type': 'application/json' }, oversized), { statusCode: 413, code: 'PAYLOAD_TOO_LARGE' }, `${name}: 413`)
        }
        if (statuses.includes('415')) {
          t.match(await answer({ 'content-type': 'text/plain' }, 'hello'), { statusCode: 415, code: 'UNSUPPORTED_MEDIA_TYPE' }, `${name}: 415`)
        }
        if (statuses.includes('414')) {
          const long = (await app.inject({ method, url: path.replace(/\{[^}]+\}/g, '1'.repeat(101)), headers: { cookie } })).json()
          t.match(long, { statusCode: 414, code: 'URI_TOO_LONG' }, `${name}: 414`)
        }
      }
    })
  })
}

t.test('session mode documents no Bearer scheme, and requires the cookie alone', async (t) => {
  const document = await servedDocument(await testApp(t, db, { env: { AUTH_MODE: 'session' } }))
  t.notOk('bearerAuth' in document.components.securitySchemes, 'no bearerAuth: session mode reads no Authorization header')
  t.match(document.components.securitySchemes.cookieAuth, { type: 'apiKey', in: 'cookie', name: 'token' })
  t.same(document.paths['/me']!.get!.security, [{ cookieAuth: [] }])
  t.same(document.paths['/logout']!.post!.security, [{ cookieAuth: [] }, {}], 'logout: the cookie is optional')
  t.same(document.paths['/login']!.post!.security, [])
})

t.test('the cookie scheme names the configured cookie', async (t) => {
  const document = await servedDocument(await testApp(t, db, { env: { COOKIE_NAME: '__Host-token' } }))
  t.equal(document.components.securitySchemes.cookieAuth?.name, '__Host-token')
  t.same(document.paths['/me']!.get!.security, [{ cookieAuth: [] }, { bearerAuth: [] }])
})
