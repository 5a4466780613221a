// The OpenAPI document, generated from the route schemas, at /openapi.json,
// and a browsable UI at /docs.
import fastifySwagger from '@fastify/swagger'
import fastifySwaggerUi from '@fastify/swagger-ui'
import fp from 'fastify-plugin'

export default fp(async function openapi (app) {
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'tokenlab', version: '0.1.0', description: 'JWT in an HttpOnly cookie, with Postgres sessions beside it for comparison. See CONTRACT.md.' },
      components: {
        securitySchemes: {
          cookieAuth: { type: 'apiKey', in: 'cookie', name: app.config.COOKIE_NAME },
          bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' }
        }
      }
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => typeof json.$id === 'string' ? json.$id : `def-${i}` }
  })
  await app.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())
}, { name: 'tokenlab-openapi', dependencies: ['tokenlab-config'] })
