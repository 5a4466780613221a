// Loads and validates the configuration once, at startup, with @fastify/env.
import fastifyEnv from '@fastify/env'
import fp from 'fastify-plugin'
import { checkConfig, ConfigError, describeConfigError, envSchemaOptions, type Config, type ConfigSource } from '../src/config.js'

declare module 'fastify' {
  interface FastifyInstance {
    config: Config
  }
}

export default fp<ConfigSource>(async function config (app, source) {
  try {
    await app.register(fastifyEnv, { confKey: 'config', ...envSchemaOptions(source) })
    await app.after()
  } catch (err) {
    throw new ConfigError(describeConfigError(err))
  }
  checkConfig(app.config)
}, { name: 'tokenlab-config' })
