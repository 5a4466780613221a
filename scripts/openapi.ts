// Writes the OpenAPI document the app serves (default configuration, jwt
// mode) to docs/openapi.json, the client types generated from it to
// test/support/api-types.ts, and the document of the mode with every route
// (JWT_REFRESH=on, JWT_REVOCATION=on, JWT_ALGORITHM=EdDSA) to docs/openapi-all-routes.json.
// `npm run lint:api` lints both documents; test/openapi.test.ts fails when a
// file no longer matches the app.
import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import openapiTS, { astToString, COMMENT_HEADER } from 'openapi-typescript'
import { renderDocument } from '../plugins/openapi.js'
import { buildApp } from '../src/app.js'

export const documentPath = fileURLToPath(new URL('../docs/openapi.json', import.meta.url))
export const typesPath = fileURLToPath(new URL('../test/support/api-types.ts', import.meta.url))
export const allRoutesDocumentPath = fileURLToPath(new URL('../docs/openapi-all-routes.json', import.meta.url))
/** The mode in which every route exists: refresh (/refresh, /sessions) with revocation, and EdDSA (the key set). */
export const allRoutesConfig = { JWT_REFRESH: 'on', JWT_REVOCATION: 'on', JWT_ALGORITHM: 'EdDSA' }

/** The served document as docs/openapi.json holds it. */
export async function servedDocument (config: Record<string, string> = {}): Promise<string> {
  const app = await buildApp({
    fromEnvironment: false,
    // Defaults everywhere, except what keeps the run self-contained: an
    // in-memory database, a throwaway key (never in the document), no log.
    // (EdDSA generates its key in memory: a secret would be a configuration error there.)
    data: { NODE_ENV: 'test', DATA_DIR: 'memory://', LOG_LEVEL: 'silent', ...(config.JWT_ALGORITHM === 'EdDSA' ? {} : { JWT_SECRET: 'openapi-document-only-0123456789abcdef' }), ...config }
  })
  try {
    const res = await app.inject({ url: '/openapi.json' })
    if (res.statusCode !== 200) throw new Error(`GET /openapi.json answered ${res.statusCode}`)
    return renderDocument(res.json())
  } finally {
    await app.close()
  }
}

/** TypeScript types for openapi-fetch, generated from the document's text. */
export async function apiTypes (documentText: string): Promise<string> {
  const ast = await openapiTS(JSON.parse(documentText) as Parameters<typeof openapiTS>[0])
  return COMMENT_HEADER + astToString(ast)
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const document = await servedDocument()
  await writeFile(documentPath, document)
  await writeFile(typesPath, await apiTypes(document))
  await writeFile(allRoutesDocumentPath, await servedDocument(allRoutesConfig))
  console.log('wrote docs/openapi.json, test/support/api-types.ts and docs/openapi-all-routes.json')
}
