// The local stack, read statically: docker-compose.yml, the Dockerfile,
// .dockerignore and deploy/nginx.conf (and `nginx -t` on that config when
// nginx is installed). test/replicas.test.ts runs what these files describe.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { commandArgv, dependsOn, dict, environment, list, mounts, readCompose, type Dict } from './support/replicas-compose.js'
import { findNginx, localNginxConf, nginxConfPath, readNginxConf } from './support/replicas-nginx.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const read = (file: string) => readFileSync(join(root, file), 'utf8')

const { text: composeText, compose, services } = readCompose()
const service = (name: string) => dict(services[name])
const commandText = (svc: Dict) => commandArgv(svc).join(' ')

t.test('docker-compose.yml', async (t) => {
  t.same(Object.keys(services).sort(), ['api', 'db', 'lb', 'migrate'], 'services db, migrate, api and lb')

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

  t.test('api: two replicas after migrate, configured for the stack', async (t) => {
    const api = service('api')
    t.equal(dict(api.deploy).replicas, 2, 'deploy.replicas: 2')
    t.equal(dependsOn(api).migrate, 'service_completed_successfully', 'waits for migrate to finish')
    t.equal(dependsOn(api).db, 'service_healthy', 'and for the database')
    const env = environment(api)
    t.equal(env.NODE_ENV, 'production')
    // eslint-disable-next-line no-template-curly-in-string -- Compose interpolation, not a template
    t.equal(env.AUTH_MODE, '${AUTH_MODE:-jwt}', 'AUTH_MODE from the shell or .env, jwt by default')
    t.match(env.DATABASE_URL, /^postgres:\/\/[^@]+@db:5432\//, 'DATABASE_URL points at the db service')
    t.equal(env.JWT_SECRET_FILE, '/run/secrets/jwt_secret', 'the signing key is read from the Compose secret')
    t.ok(list(api.secrets).some((s) => s === 'jwt_secret' || dict(s).source === 'jwt_secret'), 'api mounts the jwt_secret secret')
    t.equal(env.COOKIE_SECURE, 'false', 'COOKIE_SECURE explicitly false for the plain-http local stack')
    t.match(env.TRUST_PROXY, /^(1|[0-9a-fA-F.:/,]+)$/, 'TRUST_PROXY is one hop or addresses, never `true`')
    t.notOk(api.ports, 'no published port: only the load balancer is reachable')
    // A hop count trusts whatever connects directly; that is safe only while
    // nothing but the stack's own containers can reach the API.
    const networks = Array.isArray(api.networks) ? api.networks.map(String) : Object.keys(dict(api.networks))
    t.ok(networks.length > 0, 'api names its networks')
    for (const name of networks) t.equal(dict(dict(compose.networks)[name]).internal, true, `api's network ${name} is internal`)
  })

  t.test('lb: nginx with deploy/nginx.conf, the only published port', async (t) => {
    const lb = service('lb')
    t.match(String(lb.image), /^nginx:/)
    const publishing = Object.keys(services).filter((name) => list(service(name).ports).length > 0)
    t.same(publishing, ['lb'], 'only lb publishes ports')
    t.ok(list(lb.ports).every((p) => String(p).endsWith(':80')), 'to nginx\'s port 80')
    t.ok(Object.keys(dependsOn(lb)).includes('api'), 'starts after api')
    const conf = mounts(lb).find(([, target]) => target === '/etc/nginx/nginx.conf')
    t.ok(conf, 'mounts a config as /etc/nginx/nginx.conf')
    t.equal(conf !== undefined ? resolve(root, conf[0]) : undefined, nginxConfPath, 'and it is deploy/nginx.conf')
    t.ok(existsSync(nginxConfPath), 'which exists')
  })

  t.test('the JWT secret comes from a secret file, never an inline value', async (t) => {
    for (const [name, svc] of Object.entries(services)) {
      const env = environment(dict(svc))
      for (const key of ['JWT_SECRET', 'JWT_PREVIOUS_SECRETS']) t.notOk(key in env, `${name} sets no ${key}`)
      t.notOk(dict(svc).env_file, `${name} reads no env_file`)
    }
    t.notMatch(composeText, /JWT_(SECRET|PREVIOUS_SECRETS)\s*[:=]/, 'no JWT_SECRET anywhere in the file')
    for (const [name, svc] of Object.entries(services)) {
      if (environment(dict(svc)).JWT_SECRET_FILE === undefined) continue
      t.equal(environment(dict(svc)).JWT_SECRET_FILE, '/run/secrets/jwt_secret', `${name}: JWT_SECRET_FILE is the mounted secret`)
      t.ok(list(dict(svc).secrets).some((s) => s === 'jwt_secret' || dict(s).source === 'jwt_secret'), `${name} mounts the jwt_secret secret`)
    }
    const file = String(dict(dict(compose.secrets).jwt_secret).file ?? '')
    t.match(file, /^\.\/secrets\//, 'secrets.jwt_secret.file is under ./secrets/')
    const inRepo = spawnSync('git', ['rev-parse', '--is-inside-work-tree'], { cwd: root, encoding: 'utf8' }).stdout?.trim() === 'true'
    if (inRepo) {
      const ignored = spawnSync('git', ['check-ignore', '-q', '--no-index', file.replace(/^\.\//, '')], { cwd: root })
      t.equal(ignored.status, 0, `${file} is git-ignored (add secrets/ to .gitignore)`)
      const tracked = spawnSync('git', ['ls-files', 'secrets'], { cwd: root, encoding: 'utf8' })
      t.equal(tracked.stdout, '', 'nothing under secrets/ is committed')
    } else {
      // A copy without .git: read .gitignore itself.
      const lines = existsSync(join(root, '.gitignore')) ? read('.gitignore').split('\n').map((l) => l.trim()) : []
      t.ok(lines.some((l) => /^\/?secrets(\/(\*\*?)?)?$/.test(l)), `${file} is git-ignored (add secrets/ to .gitignore)`)
    }
    t.notMatch(read('.env.example'), /^\s*JWT_(SECRET|PREVIOUS_SECRETS)\s*=\s*\S/m, '.env.example holds no signing key')
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
  t.match(conf, /upstream tokenlab_api \{[^}]*server api:3000 resolve;[^}]*\}/, 'a round-robin upstream over the api replicas')
  t.equal(directives.filter((d) => d.startsWith('upstream ')).length, 1, 'one upstream: logins are not pinned to a replica (the throttle is shared in Postgres)')
  t.notOk(directives.some((d) => /^(hash|ip_hash|sticky)\b/.test(d)), 'no client affinity')
  t.equal(directives.filter((d) => d === 'server api:3000 resolve;').length, 1, 'one upstream server line, the one the replicas test replaces')
  t.ok(directives.includes('proxy_pass http://tokenlab_api;'), 'proxies to it')
  t.ok(directives.includes('listen 80;'), 'listens on 80, the port compose publishes')
  t.ok(directives.includes('server_tokens off;'), 'server_tokens off')
  t.ok(directives.includes('proxy_set_header X-Forwarded-For $remote_addr;'), 'X-Forwarded-For overwritten with the peer address')
  t.notOk(directives.some((d) => d.includes('$proxy_add_x_forwarded_for')), 'never appended to what the client sent')
  t.ok(directives.includes('proxy_set_header X-Forwarded-Proto $scheme;'), 'X-Forwarded-Proto')
  t.ok(directives.includes('proxy_set_header Host $http_host;'), 'Host with its port')
  t.ok(directives.some((d) => /^proxy_(connect|read|send)_timeout /.test(d)), 'explicit timeouts')
  t.notOk(directives.some((d) => /^(user|pid) /.test(d)), 'no user or pid directive (the test passes its own pid)')

  const nginx = findNginx()
  t.test('nginx -t accepts it', { skip: nginx === undefined ? 'nginx is not installed (apt-get install -y nginx): config syntax not checked' : false }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'tokenlab-nginx-t-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    // The compose upstream host `api` does not resolve here, and `resolve`
    // needs nginx >= 1.27.3: the upstream lines become 127.0.0.1, as in the replicas test.
    const file = join(dir, 'nginx.conf')
    writeFileSync(file, localNginxConf(conf, '127.0.0.1:8080', ['127.0.0.1:3000']))
    // stdout to /dev/null: the config opens /dev/stdout for the access log,
    // which fails (ENXIO) on the socket that a piped stdout would be.
    const result = spawnSync(nginx!, ['-t', '-p', dir, '-c', file, '-g', `pid ${join(dir, 'nginx.pid')};`], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] })
    t.equal(result.status, 0, `nginx -t: ${result.stderr.trim()}`)
  })
})
