import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { errors } from './schemas.js'

const Status = (status: string) => Type.Object({ status: Type.Literal(status) }, { additionalProperties: false })

const healthRoutes: FastifyPluginAsyncTypebox = async (app) => {
  app.get('/health', {
    schema: { summary: 'Liveness: 200 while the process runs', tags: ['ops'], response: { 200: Status('ok') } }
  }, async () => ({ status: 'ok' as const }))

  app.get('/ready', {
    schema: { summary: 'Readiness: 200 when the database answers, else 503', tags: ['ops'], response: { 200: Status('ready'), ...errors(503) } }
  }, async () => {
    await app.queries.ping()
    return { status: 'ready' as const }
  })
}

export default healthRoutes
