// GET / serves one small page (public/): no framework, no inline script, so
// the strict Content-Security-Policy holds.
import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import fp from 'fastify-plugin'

const publicDir = fileURLToPath(new URL('../public/', import.meta.url))
const files: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/app.js': ['app.js', 'text/javascript; charset=utf-8'],
  '/app.css': ['app.css', 'text/css; charset=utf-8']
}

export default fp(async function staticPage (app) {
  for (const [url, [file, type]] of Object.entries(files)) {
    const body = await readFile(publicDir + file, 'utf8').catch(() => undefined)
    if (body === undefined) continue
    app.get(url, { schema: { hide: true } }, async (_request, reply) => reply.type(type).send(body))
  }
}, { name: 'tokenlab-static-page' })
