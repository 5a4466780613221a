// The local stack, read statically: docker-compose.yml, the Dockerfile,
// .dockerignore and deploy/nginx.conf (and `nginx -t` on that config when
// nginx is installed). test/replicas.test.ts and test/replicas-keys.test.ts
// run what these files describe.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, posix, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { configSchema as reportsConfigSchema, loadConfig as loadReportsConfig } from '../resource-server/config.js'
import { configSchema, list as csv, loadConfig, requireSigningKey } from '../src/config.js'
import { commandArgv, dependsOn, dict, environment, list, mounts, readCompose, type Dict } from './support/replicas-compose.js'
import { findNginx, localNginxConf, nginxConfPath, readNginxConf } from './support/replicas-nginx.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (file: string) => readFileSync(join(root, file), 'utf8')

const { text: composeText, compose, services } = readCompose()
const service = (name: string) => dict(services[name])
const commandText = (svc: Dict) => commandArgv(svc).join(' ')
const networksOf = (svc: Dict) => Array.isArray(svc.networks) ? svc.networks.map(String) : Object.keys(dict(svc.networks))

/** A service's secrets or configs as {source: path in the container}, from either Compose form (short: /run/secrets/<name> or /<name>). */
function mounted (svc: Dict, kind: 'secrets' | 'configs'): Record<string, string> {
  return Object.fromEntries(list(svc[kind]).map((entry) => {
    const source = typeof entry === 'string' ? entry : String(dict(entry).source)
    const target = typeof entry === 'string' ? undefined : dict(entry).target as string | undefined
    const path = target === undefined
      ? (kind === 'secrets' ? `/run/secrets/${source}` : `/${source}`)
      : (kind === 'secrets' && !target.startsWith('/') ? `/run/secrets/${target}` : target)
    return [source, path]
  }))
}

/** A value as Compose would pass it with nothing in the shell or .env: `${VAR:-default}` is the default, `$$` a `$`. */
function withDefaults (value: string): string {
  return value.replace(/\$\$|\$\{([A-Z_][A-Z0-9_]*):-([^}]*)\}|\$\{[^}]*\}|\$[A-Z_]/g, (match: string, _name: string | undefined, fallback: string | undefined) => {
    if (match === '$$') return '$'
    if (fallback !== undefined) return fallback
    throw new Error(`docker-compose.yml: ${match} has no default`)
  })
}

/** The runtime stage's ENV (the image's environment, under every service's own). */
function imageEnvironment (): Record<string, string> {
  const runtime = dockerfile(read('Dockerfile')).reduce<Array<{ op: string, args: string }>>((stage, i) => i.op === 'FROM' ? [] : [...stage, i], [])
  const env: Record<string, string> = {}
  for (const i of runtime.filter((i) => i.op === 'ENV')) {
    for (const pair of i.args.split(/\s+/)) {
      const eq = pair.indexOf('=')
      if (eq > 0) env[pair.slice(0, eq)] = pair.slice(eq + 1)
    }
  }
  return env
}

/** What a container of this service (from the tokenlab image) starts with: the image's ENV, then the service's, defaults filled in. */
function containerEnvironment (svc: Dict): Record<string, string> {
  const own = Object.fromEntries(Object.entries(environment(svc)).map(([k, v]) => [k, withDefaults(v)]))
  return { ...imageEnvironment(), ...own }
}

t.test('docker-compose.yml', async (t) => {
  t.same(Object.keys(services).sort(), ['api', 'db', 'lb', 'migrate', 'reports', 'reports-role'], 'services db, migrate, reports-role, api, reports and lb')

  t.test('db: Postgres with a named volume and a pg_isready healthcheck', async (t) => {
    const db = service('db')
    t.match(String(db.image), /^postgres:1[56](\b|-|\.)/, 'postgres 15 or 16')
    const test = list(dict(db.healthcheck).test).join(' ')
    t.match(test, /pg_isready/, 'the healthcheck runs pg_isready')
    const named = mounts(db).find(([source, target]) => target === '/var/lib/postgresql/data' && !/^[./~]/.test(source))
    t.ok(named, 'the data directory is a named volume')
    t.ok(named !== undefined && named[0] in dict(compose.volumes), 'declared under top-level volumes')
    t.notOk(db.ports, 'no published port')
  })

  t.test('migrate: one-shot migrate and seed with the API image, after the database is healthy', async (t) => {
    const migrate = service('migrate')
    t.equal(migrate.image, service('api').image, 'the same image as api')
    t.match(commandText(migrate), /node dist\/scripts\/db\.js migrate && node dist\/scripts\/db\.js seed --if-empty/)
    t.equal(dependsOn(migrate).db, 'service_healthy')
    t.not(migrate.restart, 'always', 'not restarted: it runs once')
    t.match(environment(migrate).DATABASE_URL, /^postgres:\/\/[^@]+@db:5432\//, 'DATABASE_URL points at the db service')
  })

  t.test('reports-role: once after migrate, psql runs the two role files from deploy/', async (t) => {
    const job = service('reports-role')
    t.equal(job.image, service('db').image, 'the database image (it has psql)')
    t.equal(dependsOn(job).migrate, 'service_completed_successfully', 'after the migrations: it grants on their tables')
    t.equal(job.restart, 'no', 'runs once')
    const argv = commandArgv(job)
    t.equal(argv[0], 'psql')
    t.ok(argv.includes('ON_ERROR_STOP=1'), 'stops at the first error (exit code not 0, so nothing waiting on it starts)')
    const files = argv.flatMap((arg, i) => argv[i - 1] === '-f' ? [arg] : [])
    t.same(files.map((f) => posix.basename(f)), ['reports-reader.sql', 'reports-login.sql'], 'the group role and its grants first, then the login role')
    for (const file of files) {
      const inContainer = posix.resolve(String(job.working_dir ?? '/'), file)
      const mount = list(job.volumes).map(String).find((v) => v.split(':')[1] === inContainer)
      t.equal(mount, `./deploy/${posix.basename(file)}:${inContainer}:ro`, `${file}: deploy/${posix.basename(file)}, read-only`)
      t.ok(existsSync(join(root, 'deploy', posix.basename(file))), 'which exists')
    }
    const env = environment(job)
    t.equal(env.PGHOST, 'db')
    t.equal(env.PGDATABASE, 'tokenlab', 'the database the API uses')
    t.equal(env.PGUSER, 'tokenlab', 'as the database\'s owner (POSTGRES_USER, which may create roles)')
    t.equal(env.PGPASSWORD, environment(service('db')).POSTGRES_PASSWORD, 'with the database\'s password')
    // eslint-disable-next-line no-template-curly-in-string -- Compose interpolation, not a template
    t.equal(env.REPORTS_DB_PASSWORD, '${REPORTS_DB_PASSWORD:-reports}', 'the login role\'s password from the shell or .env')
    t.match(read('deploy/reports-login.sql'), /\\getenv reports_password REPORTS_DB_PASSWORD/, 'which reports-login.sql reads from the environment')
    t.match(read('deploy/reports-login.sql'), /CREATE ROLE reports LOGIN IN ROLE reports_reader/, 'for the login role reports, in the group reports_reader')
  })

  t.test('api: two EdDSA replicas after migrate, configured for the stack', async (t) => {
    const api = service('api')
    t.equal(dict(api.deploy).replicas, 2, 'deploy.replicas: 2')
    t.equal(dependsOn(api).migrate, 'service_completed_successfully', 'waits for migrate to finish')
    t.equal(dependsOn(api).db, 'service_healthy', 'and for the database')
    const env = environment(api)
    t.equal(env.NODE_ENV, 'production')
    // eslint-disable-next-line no-template-curly-in-string -- Compose interpolation, not a template
    t.equal(env.AUTH_MODE, '${AUTH_MODE:-jwt}', 'AUTH_MODE from the shell or .env, jwt by default')
    t.match(env.DATABASE_URL, /^postgres:\/\/[^@]+@db:5432\//, 'DATABASE_URL points at the db service')
    t.equal(env.JWT_ALGORITHM, 'EdDSA', 'Ed25519 keys: the resource service verifies with the public half')
    t.equal(env.JWT_PRIVATE_KEY_FILE, mounted(api, 'secrets').jwt_private_key, 'the signing key is the mounted jwt_private_key secret')
    t.equal(env.JWT_PUBLIC_KEYS_FILE, mounted(api, 'configs').jwt_public_keys, 'the other public keys are the mounted jwt_public_keys config')
    t.same(csv(env.JWT_AUDIENCE ?? ''), ['tokenlab', 'reports'], 'every token names the resource service\'s audience too')
    t.equal(env.COOKIE_SECURE, 'false', 'COOKIE_SECURE explicitly false for the plain-http local stack')
    t.match(env.TRUST_PROXY, /^(1|[0-9a-fA-F.:/,]+)$/, 'TRUST_PROXY is one hop or addresses, never `true`')
    t.notOk(api.ports, 'no published port: only the load balancer is reachable')
    const known = Object.keys(configSchema.properties)
    for (const name of Object.keys(env)) t.ok(known.includes(name), `${name} is a tokenlab setting (src/config.ts)`)
    const config = loadConfig({ data: containerEnvironment(api), fromEnvironment: false })
    t.doesNotThrow(() => requireSigningKey(config), 'the configuration tokenlab validates at start, with its signing key')
    t.match(config, { NODE_ENV: 'production', HOST: '0.0.0.0', PORT: 3000, AUTH_MODE: 'jwt', JWT_ALGORITHM: 'EdDSA' }, 'production, EdDSA, on 0.0.0.0:3000')
    // A hop count trusts whatever connects directly; that is safe only while
    // nothing but the stack's own containers can reach the API.
    const networks = networksOf(api)
    t.ok(networks.length > 0, 'api names its networks')
    for (const name of networks) t.equal(dict(dict(compose.networks)[name]).internal, true, `api's network ${name} is internal`)
  })

  t.test('reports: the resource service from the same image, with the API\'s key set and a read-only role', async (t) => {
    const reports = service('reports')
    const api = service('api')
    t.equal(reports.image, api.image, 'the same image as api')
    t.same(commandArgv(reports), ['node', 'dist/resource-server/server.js'])
    t.equal(dependsOn(reports)['reports-role'], 'service_completed_successfully', 'after its database role exists')
    t.equal(dependsOn(reports).api, 'service_healthy', 'and after the API, which publishes the key set')
    const env = environment(reports)
    const known = Object.keys(reportsConfigSchema.properties)
    for (const name of Object.keys(env)) t.ok(known.includes(name), `${name} is a resource service setting (resource-server/config.ts)`)
    const config = loadReportsConfig({ data: containerEnvironment(reports), fromEnvironment: false })
    t.match(config, { HOST: '0.0.0.0', PORT: 3100, JWT_AUDIENCE: 'reports' }, 'the configuration the resource service validates at start: its own port, not the image\'s 3000')

    const tokenlab = loadConfig({ data: containerEnvironment(api), fromEnvironment: false })
    const jwks = new URL(config.JWKS_URL)
    t.equal(jwks.hostname, 'api', 'JWKS_URL names the api service (either replica: they publish the same set)')
    t.equal(jwks.port, String(tokenlab.PORT), 'on the API\'s port')
    t.equal(jwks.pathname, '/.well-known/jwks.json')
    t.equal(config.JWT_ISSUER, tokenlab.JWT_ISSUER, 'tokenlab\'s issuer')
    t.ok(csv(tokenlab.JWT_AUDIENCE).slice(1).includes(config.JWT_AUDIENCE), 'an audience tokenlab puts in every token, not tokenlab\'s own')
    t.equal(config.COOKIE_NAME, tokenlab.COOKIE_NAME, 'the cookie tokenlab sets')

    t.same(mounted(reports, 'secrets'), {}, 'no secret mounted')
    t.same(mounted(reports, 'configs'), {}, 'no key file mounted')
    t.notOk(Object.keys(env).some((name) => /SECRET|PRIVATE|KEY_FILE/.test(name)), `no key or secret setting (${Object.keys(env).join(', ')})`)
    const database = new URL(withDefaults(env.DATABASE_URL ?? ''))
    t.equal(database.username, 'reports', 'DATABASE_URL: the login role reports-role creates, not the API\'s')
    t.equal(database.host, 'db:5432')
    t.equal(database.pathname, '/tokenlab')
    t.match(env.DATABASE_URL, /^postgres:\/\/reports:\$\{REPORTS_DB_PASSWORD:-reports\}@/, 'with the password reports-role sets')
    t.notOk(reports.ports, 'no published port')
    const networks = networksOf(reports)
    t.ok(networks.length > 0, 'reports names its networks')
    for (const name of networks) t.equal(dict(dict(compose.networks)[name]).internal, true, `its network ${name} is internal`)
  })

  t.test('lb: nginx with deploy/nginx.conf, the only published port', async (t) => {
    const lb = service('lb')
    t.match(String(lb.image), /^nginx:/)
    const publishing = Object.keys(services).filter((name) => list(service(name).ports).length > 0)
    t.same(publishing, ['lb'], 'only lb publishes ports')
    t.ok(list(lb.ports).every((p) => String(p).endsWith(':80')), 'to nginx\'s port 80')
    t.ok(Object.keys(dependsOn(lb)).includes('api'), 'starts after api')
    t.ok(Object.keys(dependsOn(lb)).includes('reports'), 'and reports')
    const conf = mounts(lb).find(([, target]) => target === '/etc/nginx/nginx.conf')
    t.ok(conf, 'mounts a config as /etc/nginx/nginx.conf')
    t.equal(conf !== undefined ? resolve(root, conf[0]) : undefined, nginxConfPath, 'and it is deploy/nginx.conf')
    t.ok(existsSync(nginxConfPath), 'which exists')
    for (const [name, svc] of Object.entries(services)) {
      if (name === 'lb') continue
      for (const network of networksOf(dict(svc))) t.equal(dict(dict(compose.networks)[network]).internal, true, `${name}: only on internal networks (${network})`)
    }
  })

  t.test('keys come from files mounted into the API only, never from inline values', async (t) => {
    for (const [name, svc] of Object.entries(services)) {
      const env = environment(dict(svc))
      // HS256 is the API's default elsewhere; this stack runs EdDSA, and the two cannot be mixed.
      for (const key of ['JWT_SECRET', 'JWT_SECRET_FILE', 'JWT_PREVIOUS_SECRETS']) t.notOk(key in env, `${name} sets no ${key}`)
      t.notOk(dict(svc).env_file, `${name} reads no env_file`)
      const secrets = Object.keys(mounted(dict(svc), 'secrets'))
      if (name === 'api') t.same(secrets, ['jwt_private_key'], 'api mounts the private key secret')
      else t.same(secrets, [], `${name} mounts no secret`)
      if (name !== 'api') t.notOk('JWT_PRIVATE_KEY_FILE' in env, `${name} sets no JWT_PRIVATE_KEY_FILE`)
    }
    t.notMatch(composeText, /JWT_(SECRET|PREVIOUS_SECRETS)\s*[:=]/, 'no JWT secret anywhere in the file')
    t.notMatch(composeText, /-----BEGIN/, 'no PEM key inline')
    t.same(Object.keys(dict(compose.secrets)), ['jwt_private_key'], 'one secret: the private key')
    const files = [String(dict(dict(compose.secrets).jwt_private_key).file ?? ''), String(dict(dict(compose.configs).jwt_public_keys).file ?? '')]
    const inRepo = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: root, encoding: 'utf8' }).stdout?.trim() === 'true'
    for (const file of files) {
      t.match(file, /^\.\/secrets\/[^/]+\.pem$/, `${file}: a PEM file under ./secrets/`)
      if (inRepo) {
        const ignored = spawnSync('git', ['check-ignore', '-q', '--no-index', file.replace(/^\.\//, '')], { cwd: root })
        t.equal(ignored.status, 0, `${file} is git-ignored (add secrets/ to .gitignore)`)
      } else {
        // A copy without .git: read .gitignore itself.
        const lines = existsSync(join(root, '.gitignore')) ? read('.gitignore').split('\n').map((l) => l.trim()) : []
        t.ok(lines.some((l) => /^\/?secrets(\/(\*\*?)?)?$/.test(l)), `${file} is git-ignored (add secrets/ to .gitignore)`)
      }
    }
    if (inRepo) {
      const tracked = spawnSync('git', ['ls-files', 'secrets'], { cwd: root, encoding: 'utf8' })
      t.equal(tracked.stdout, '', 'nothing under secrets/ is committed')
    }
    const first = composeText.split('\n').filter((l) => l.startsWith('#')).join('\n')
    t.match(first, /openssl genpkey -algorithm ed25519 -out secrets\/jwt_private_key\.pem/, 'the first-run instructions make the private key')
    t.match(first, /secrets\/jwt_public_keys\.pem/, 'and the public keys file')
    t.notMatch(read('.env.example'), /^\s*JWT_(SECRET|PREVIOUS_SECRETS)\s*=\s*\S/m, '.env.example holds no signing key')
    t.notMatch(read('.env.example'), /-----BEGIN/, 'nor a PEM key')
  })
})

/** Dockerfile instructions, continuation lines joined and comments dropped. */
function dockerfile (text: string): Array<{ op: string, args: string }> {
  const joined = text.split('\n').filter((l) => !/^\s*#/.test(l)).join('\n').replace(/\\\n/g, ' ')
  return joined.split('\n').map((l) => l.trim()).filter((l) => l !== '').map((l) => {
    const space = l.search(/\s/)
    return { op: l.slice(0, space).toUpperCase(), args: l.slice(space + 1).trim() }
  })
}

t.test('Dockerfile', async (t) => {
  const instructions = dockerfile(read('Dockerfile'))
  const froms = instructions.filter((i) => i.op === 'FROM')
  t.ok(froms.length >= 2, 'multi-stage')
  for (const from of froms) t.match(from.args, /^node:24(-slim|-alpine)?(@sha256:[0-9a-f]{64})?\s/, `Node 24 base image: ${from.args}`)
  const lastFrom = instructions.lastIndexOf(froms.at(-1)!)
  const build = instructions.slice(0, lastFrom)
  const runtime = instructions.slice(lastFrom)
  const runs = (stage: typeof instructions) => stage.filter((i) => i.op === 'RUN').map((i) => i.args).join('\n')

  t.match(runs(build), /npm ci(?! --omit)/, 'the build stage installs dev dependencies')
  t.match(runs(build), /npm run build/, 'and builds')
  t.match(runs(runtime), /npm ci --omit=dev/, 'the runtime stage installs production dependencies only')
  t.ok(runtime.some((i) => i.op === 'COPY' && /^--from=\S+\s+\S*dist\b/.test(i.args)), 'and copies dist/ from the build stage')

  const env = runtime.filter((i) => i.op === 'ENV').map((i) => i.args).join(' ')
  t.match(env, /\bNODE_ENV=production\b/, 'NODE_ENV=production')
  t.match(env, /\bHOST=0\.0\.0\.0\b/, 'HOST=0.0.0.0')

  const user = runtime.filter((i) => i.op === 'USER').at(-1)
  t.ok(user, 'the runtime stage sets USER')
  t.notMatch(user?.args ?? 'root', /^(root|0)(:|$)/, `and it is not root: ${user?.args}`)

  const healthcheck = runtime.find((i) => i.op === 'HEALTHCHECK')
  t.ok(healthcheck, 'HEALTHCHECK')
  t.match(healthcheck?.args ?? '', /CMD .*node.*\/health/, 'with node against /health (the slim image has no curl)')

  const cmd = runtime.filter((i) => i.op === 'CMD').at(-1)
  t.match(cmd?.args ?? '', /^\[\s*"node",\s*"dist\/src\/server\.js"\s*\]$/, 'CMD node dist/src/server.js')
})

t.test('.dockerignore keeps local state and secrets out of the build context', async (t) => {
  const entries = read('.dockerignore').split('\n').map((l) => l.trim().replace(/^\//, '').replace(/\/$/, '')).filter((l) => l !== '' && !l.startsWith('#'))
  for (const entry of ['node_modules', 'dist', 'data', '.git', 'test-output', '.env', 'secrets']) {
    t.ok(entries.includes(entry), entry)
  }
})

t.test('deploy/nginx.conf', async (t) => {
  const conf = readNginxConf()
  const directives = conf.split('\n').map((l) => l.replace(/#.*/, '').trim()).filter((l) => l !== '')
  t.match(conf, /upstream tokenlab_api \{[^}]*server api:3000 resolve max_fails=1 fail_timeout=1s;[^}]*\}/, 'a round-robin upstream over the api replicas, a refusing replica skipped for 1 s only')
  const reportsPort = environment(service('reports')).PORT
  t.match(conf, new RegExp(`upstream tokenlab_reports \\{[^}]*server reports:${reportsPort} resolve max_fails=1 fail_timeout=1s;[^}]*\\}`), `an upstream for the resource service on its PORT (${reportsPort})`)
  t.same(directives.filter((d) => d.startsWith('upstream ')), ['upstream tokenlab_api {', 'upstream tokenlab_reports {'],
    'one upstream per service: logins are not pinned to an API replica (the throttle is shared in Postgres)')
  t.notOk(directives.some((d) => /^(hash|ip_hash|sticky)\b/.test(d)), 'no client affinity')
  t.equal(directives.filter((d) => d.startsWith('server api:3000 resolve')).length, 1, 'one api server line, the one the replicas tests replace')
  t.equal(directives.filter((d) => /^server reports:\d+ resolve /.test(d)).length, 1, 'one reports server line, likewise')
  t.ok(directives.includes('client_max_body_size 16k;') && directives.includes('error_page 413 = @too_large;'), 'a body over the API\'s 16 KiB is refused by nginx, as the JSON 413')
  t.ok(directives.includes('proxy_pass http://tokenlab_api;'), 'proxies to the API')

  // The resource service's routes, on the API's origin so the browser sends
  // it the auth cookie; nothing else of the API's paths goes there.
  const locations = [...conf.matchAll(/location\s+(=\s*|\^~\s*)?(\S+)\s*\{([^}]*)\}/g)].map((m) => ({ match: (m[1] ?? '').trim(), path: m[2]!, body: m[3]! }))
  const toReports = locations.filter((l) => /proxy_pass http:\/\/tokenlab_reports;/.test(l.body))
  t.same(toReports.map((l) => `${l.match}${l.path}`).sort(), ['/reports/', '=/whoami'], 'GET /whoami (exactly) and /reports/… go to the resource service')
  t.same(locations.filter((l) => l.path === '/').map((l) => l.body.trim()), ['proxy_pass http://tokenlab_api;'], 'everything else to the API')
  for (const l of toReports) t.match(l.body, /error_page 502 504 = @\w+;/, `${l.path}: the JSON 503 when it is down, not nginx's page`)

  t.ok(directives.includes('listen 80;'), 'listens on 80, the port compose publishes')
  t.ok(directives.includes('server_tokens off;'), 'server_tokens off')
  t.ok(directives.includes('proxy_set_header X-Forwarded-For $remote_addr;'), 'X-Forwarded-For overwritten with the peer address')
  t.notOk(directives.some((d) => d.includes('$proxy_add_x_forwarded_for')), 'never appended to what the client sent')
  t.ok(directives.includes('proxy_set_header X-Forwarded-Proto $scheme;'), 'X-Forwarded-Proto')
  t.ok(directives.includes('proxy_set_header Host $http_host;'), 'Host with its port')
  t.ok(directives.some((d) => /^proxy_(connect|read|send)_timeout /.test(d)), 'explicit timeouts')
  t.notOk(locations.some((l) => /proxy_set_header|proxy_next_upstream/.test(l.body)), 'no location overrides the server\'s headers or retries (nginx would drop the inherited ones)')
  t.notOk(directives.some((d) => /^(user|pid) /.test(d)), 'no user or pid directive (the test passes its own pid)')

  const nginx = findNginx()
  t.test('nginx -t accepts it', { skip: nginx === undefined ? 'nginx is not installed (apt-get install -y nginx): config syntax not checked' : false }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenlab-nginx-t-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    // The compose upstream hosts do not resolve here, and `resolve` needs
    // nginx >= 1.27.3: the upstream lines become 127.0.0.1, as in the replicas tests.
    for (const [what, reports] of [['with a resource service', '127.0.0.1:3100'], ['without one (its upstream marked down)', undefined]] as const) {
      const file = join(dir, 'nginx.conf')
      writeFileSync(file, localNginxConf(conf, '127.0.0.1:8080', ['127.0.0.1:3000'], reports))
      // stdout to /dev/null: the config opens /dev/stdout for the access log,
      // which fails (ENXIO) on the socket that a piped stdout would be.
      const result = spawnSync(nginx!, ['-t', '-p', dir, '-c', file, '-g', `pid ${join(dir, 'nginx.pid')};`], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] })
      t.equal(result.status, 0, `nginx -t ${what}: ${result.stderr.trim()}`)
    }
  })
})
