// deploy/k8s, checked offline: no cluster and no kustomize here. The
// kustomizations are rendered by test/support/k8s-render.ts (which names the
// kustomize features it implements and refuses every other), every rendered
// object is validated against the Kubernetes and CloudNativePG schemas with
// unknown fields refused (test/support/k8s-schema.ts), and the deployment
// rules are checked by the functions of test/support/k8s-rules.ts, each of
// which is also run on a deliberately broken copy to show it can fail.
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { parseAllDocuments } from 'yaml'
import type { Cluster, Pooler } from '@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1'
import type { IDeployment } from 'kubernetes-models/apps/v1/Deployment'
import type { IHorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'
import type { IJob } from 'kubernetes-models/batch/v1/Job'
import type { IIngress } from 'kubernetes-models/networking.k8s.io/v1/Ingress'
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy'
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import type { IContainer } from 'kubernetes-models/v1/Container'
import type { IService } from 'kubernetes-models/v1/Service'
import { configSchema as reportsConfigSchema, loadConfig as loadReportsConfig } from '../resource-server/config.js'
import { configSchema, list, loadConfig, requireSigningKey } from '../src/config.js'
import { clone, render, UnsupportedKustomizeFeature, type K8sObject } from './support/k8s-render.js'
import {
  allowedConnections, envValue, ingressRoute, inlineSecretViolations, metricsViolations, podSecurityViolations, podTemplates,
  privateKeyViolations, probeViolations, quantity, resourceViolations, selectorMatches, shutdownViolations, type ModelPod
} from './support/k8s-rules.js'
import { schemaProblems } from './support/k8s-schema.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const k8s = join(root, 'deploy/k8s')
const readme = readFileSync(join(k8s, 'README.md'), 'utf8')

const base = render(join(k8s, 'base'))
const production = render(join(k8s, 'overlays/production'))
const cnpg = render(join(k8s, 'examples/cloudnative-pg'))
const renderings = { base, production }

/** How long a server drains after SIGTERM: close-with-grace's delay in its server.ts. */
function drainSeconds (file: string): number {
  const ms = /const SHUTDOWN_GRACE_MS = ([0-9_]+)/.exec(readFileSync(join(root, file), 'utf8'))?.[1]
  return Number(ms?.replaceAll('_', '')) / 1000
}
const DRAIN = { tokenlab: drainSeconds('src/server.ts'), reports: drainSeconds('resource-server/server.ts') }

const PROBES = {
  tokenlab: { readiness: '/ready', liveness: '/health', startup: '/health' },
  reports: { readiness: '/health', liveness: '/health', startup: '/health' }
}

function find<T> (objects: K8sObject[], kind: string, name: string): T {
  const obj = objects.find((o) => o.kind === kind && o.metadata.name === name)
  if (obj === undefined) throw new Error(`${kind}/${name} is not in the rendering`)
  return obj as unknown as T
}
const deployment = (objects: K8sObject[], name: string) => find<IDeployment>(objects, 'Deployment', name)
const job = (objects: K8sObject[]) => find<IJob>(objects, 'Job', 'tokenlab-migrate')
function containerOf (workload: IDeployment | IJob, name: string): IContainer {
  const container = workload.spec?.template.spec?.containers.find((c) => c.name === name)
  if (container === undefined) throw new Error(`no container ${name}`)
  return container
}
const env = (container: IContainer, name: string) => container.env?.find((e) => e.name === name)

/** `kubectl kustomize dir` (kustomize built into kubectl), or undefined where kubectl is not installed. */
function kubectlKustomize (dir: string): unknown[] | undefined {
  const run = spawnSync('kubectl', ['kustomize', dir], { encoding: 'utf8' })
  if (run.error !== undefined) return undefined
  if (run.status !== 0) throw new Error(`kubectl kustomize ${dir}: ${run.stderr}`)
  return parseAllDocuments(run.stdout).map((doc) => doc.toJS() as unknown)
}
const kubectlInstalled = spawnSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).status === 0
/** Objects in a stable order (kustomize sorts its output by kind), as plain JSON. */
const byId = (objects: unknown[]) => (JSON.parse(JSON.stringify(objects)) as K8sObject[])
  .sort((a, b) => `${a.kind}/${a.metadata.name}`.localeCompare(`${b.kind}/${b.metadata.name}`))

/** A copy of the production rendering with one thing broken. */
function broken (mutate: (objects: K8sObject[]) => void): K8sObject[] {
  const copy = clone(production)
  mutate(copy)
  return copy
}

t.test('the renderer implements only the kustomize features it names', async (t) => {
  const deploymentYaml = [
    'apiVersion: apps/v1', 'kind: Deployment', 'metadata: {name: app}', 'spec:', '  selector: {matchLabels: {app: x}}',
    '  template:', '    metadata: {labels: {app: x}}', '    spec:', '      containers:', '        - name: app', '          image: app:1',
    '          env: [{name: A, value: "1"}, {name: B, value: "2"}]', '        - name: side', '          image: other:3', ''
  ].join('\n')
  const ingressYaml = 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec:\n  rules: [{host: a.example}, {host: b.example}]\n'
  const kustomization = (extra: string) => `apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [app.yaml]\n${extra}`

  t.test('what it supports, rendered as kustomize does', async (t) => {
    const dir = t.testdir({
      base: { 'kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [app.yaml, ingress.yaml]\n', 'app.yaml': deploymentYaml, 'ingress.yaml': ingressYaml },
      overlay: {
        'kustomization.yaml': [
          'apiVersion: kustomize.config.k8s.io/v1beta1', 'kind: Kustomization', 'namespace: prod', 'resources: [../base, namespace.yaml]',
          'images: [{name: app, newName: registry.example/app, newTag: "2"}]', 'patches: [{path: env.yaml}, {path: rules.yaml}]', ''
        ].join('\n'),
        'namespace.yaml': 'apiVersion: v1\nkind: Namespace\nmetadata: {name: elsewhere}\n',
        'env.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  template:\n    spec:\n      containers:\n        - name: app\n          env: [{name: B, value: "20"}, {name: C, value: "3"}]\n',
        'rules.yaml': 'apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: web}\nspec:\n  rules: [{host: c.example}]\n'
      }
    })
    const objects = render(join(dir, 'overlay'))
    const app = deployment(objects, 'app')
    t.same(containerOf(app, 'app').env, [{ name: 'B', value: '20' }, { name: 'C', value: '3' }, { name: 'A', value: '1' }], 'env merged by name: the patch\'s B and C first, then A')
    t.equal(containerOf(app, 'app').image, 'registry.example/app:2', 'images: newName and newTag')
    t.equal(containerOf(app, 'side').image, 'other:3', 'another image untouched, the container kept')
    t.same(find<IIngress>(objects, 'Ingress', 'web').spec?.rules, [{ host: 'c.example' }], 'a list without a merge key replaced whole')
    t.same(objects.map((o) => `${o.kind}/${o.metadata.name}:${o.metadata.namespace ?? '-'}`), ['Deployment/app:prod', 'Ingress/web:prod', 'Namespace/prod:-'],
      'namespace set on namespaced objects, and a Namespace object renamed to it')
    const kubectl = kubectlKustomize(join(dir, 'overlay'))
    if (kubectl !== undefined) t.strictSame(byId(objects), byId(kubectl), 'exactly what kubectl kustomize renders')
  })

  t.test('and nothing else', async (t) => {
    const refused = (files: Record<string, string>, message: RegExp, what: string) => {
      const dir = t.testdir({ 'app.yaml': deploymentYaml, ...files })
      try {
        render(dir)
        t.fail(`${what}: rendered`)
      } catch (err) {
        t.ok(err instanceof UnsupportedKustomizeFeature, `${what}: refused as unsupported`)
        t.match((err as Error).message, message, what)
      }
    }
    refused({ 'kustomization.yaml': kustomization('commonLabels: {team: x}\n') }, /field commonLabels/, 'another kustomization field')
    refused({ 'kustomization.yaml': kustomization('configMapGenerator: [{name: c, literals: [a=b]}]\n') }, /field configMapGenerator/, 'a generator')
    refused({ 'kustomization.yaml': kustomization('patches: [{path: p.yaml, target: {kind: Deployment}}]\n'), 'p.yaml': deploymentYaml }, /no target/, 'a patch with a target')
    refused({
      'kustomization.yaml': kustomization('patches: [{path: p.yaml}]\n'),
      'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  template:\n    spec:\n      $patch: replace\n'
    }, /directives/, 'a strategic-merge directive')
    refused({
      'kustomization.yaml': kustomization('patches: [{path: p.yaml}]\n'),
      'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  template:\n    spec:\n      tolerations: [{key: a, operator: Exists}]\n'
    }, /tolerations: a list the renderer does not know/, 'a list whose merge the renderer does not know')
    refused({
      'kustomization.yaml': kustomization('patches: [{path: p.yaml}]\n'),
      'p.yaml': 'apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: app}\nspec:\n  replicas: null\n'
    }, /deletion/, 'a null (deletion)')
    refused({ 'kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [https://github.com/x/y//base]\n' }, /remote resource/, 'a remote base')
    refused({ 'kustomization.yaml': kustomization('images: [{name: app, newTag: "2", tagSuffix: x}]\n') }, /images entry/, 'an unknown images field')
    refused({
      'kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [cron.yaml]\n',
      'cron.yaml': 'apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\n'
    }, /CronJob is not one the renderer knows/, 'a kind of unknown scope')
    refused({
      'kustomization.yaml': 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [flag.yaml]\n',
      'flag.yaml': 'apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {JWT_REFRESH: on}\n'
    }, /YAML 1.1 and 1.2/, 'a value YAML 1.1 and 1.2 read differently')
  })
})

t.test('the renderings are what kubectl kustomize renders, where kubectl is installed', { skip: !kubectlInstalled && 'kubectl is not installed' }, async (t) => {
  for (const [name, objects] of Object.entries({ ...renderings, 'examples/cloudnative-pg': cnpg })) {
    const dir = join(k8s, name === 'base' ? 'base' : name === 'production' ? 'overlays/production' : name)
    t.strictSame(byId(objects), byId(kubectlKustomize(dir) ?? []), name)
  }
})

t.test('every rendered object matches its schema, with no unknown field', async (t) => {
  for (const [name, objects] of Object.entries({ ...renderings, 'examples/cloudnative-pg': cnpg })) {
    for (const obj of objects) t.same(schemaProblems(obj), [], `${name}: ${obj.kind}/${obj.metadata.name}`)
  }
  t.same(cnpg.map((o) => o.kind).sort(), ['Cluster', 'Namespace', 'NetworkPolicy', 'NetworkPolicy', 'Pooler'], 'the CloudNativePG objects are validated too')

  t.test('a broken object is reported', async (t) => {
    const copy = broken((objects) => {
      const container = containerOf(deployment(objects, 'tokenlab'), 'tokenlab') as IContainer & Record<string, unknown>
      container.readinesProbe = container.readinessProbe
      container.ports![0]!.containerPort = '3000' as unknown as number
    })
    const problems = schemaProblems(find(copy, 'Deployment', 'tokenlab'))
    t.match(problems, [/containerPort must be integer/, /unknown field \/spec\/template\/spec\/containers\/0\/readinesProbe/], 'a wrong type and a misspelt field')
    const pooler = clone(find<Pooler>(cnpg, 'Pooler', 'pgbouncer'))
    pooler.spec.pgbouncer.poolMode = 'transactions' as 'transaction'
    t.match(schemaProblems(pooler as unknown as K8sObject), [/poolMode must be equal to one of the allowed values/], 'a CloudNativePG enum')
    const cluster = clone(find<Cluster>(cnpg, 'Cluster', 'tokenlab-db')) as unknown as { spec: Record<string, unknown> }
    cluster.spec.instancez = 3
    t.match(schemaProblems(cluster as unknown as K8sObject), [/unknown field \/spec\/instancez/], 'an unknown CloudNativePG field')
  })
})

t.test('the production overlay', async (t) => {
  const namespace = find<{ metadata: { labels: Record<string, string> } }>(production, 'Namespace', 'tokenlab')
  t.equal(namespace.metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted', 'the namespace enforces the restricted Pod Security profile')
  for (const obj of production.filter((o) => o.kind !== 'Namespace')) t.equal(obj.metadata.namespace, 'tokenlab', `${obj.kind}/${obj.metadata.name} in namespace tokenlab`)
  t.notOk(base.some((o) => o.metadata.namespace !== undefined), 'the base sets no namespace')

  const images = podTemplates(production).flatMap((pod) => pod.spec.containers.map((c) => c.image))
  t.same([...new Set(images)], ['registry.example.com/tokenlab/tokenlab:0.1.0'], 'one pinned image for both services and the Job')

  const ingress = find<IIngress>(production, 'Ingress', 'tokenlab')
  t.same(ingress.spec?.rules?.map((r) => r.host), ['tokenlab.example.com'], 'the Ingress serves the production host')
  t.same(ingress.spec?.tls, [{ hosts: ['tokenlab.example.com'], secretName: 'tokenlab-tls' }], 'with TLS for it')

  const tokenlab = containerOf(deployment(production, 'tokenlab'), 'tokenlab')
  t.equal(envValue(tokenlab, 'COOKIE_NAME'), '__Host-token', '__Host- auth cookie')
  t.equal(envValue(tokenlab, 'REFRESH_COOKIE_NAME'), '__Secure-refresh', '__Secure- refresh cookie')
  t.equal(envValue(containerOf(deployment(production, 'reports'), 'reports'), 'COOKIE_NAME'), '__Host-token', 'the resource service reads the same cookie')
  t.equal(envValue(containerOf(deployment(base, 'tokenlab'), 'tokenlab'), 'COOKIE_NAME'), 'token', 'which the base does not set')
  t.equal(tokenlab.env?.filter((e) => e.name === 'COOKIE_NAME').length, 1, 'the patch replaced the variable rather than adding a second')
  t.ok(quantity(tokenlab.resources?.requests?.cpu) > quantity(containerOf(deployment(base, 'tokenlab'), 'tokenlab').resources?.requests?.cpu), 'more CPU than the base')
  t.equal(find<IHorizontalPodAutoscaler>(production, 'HorizontalPodAutoscaler', 'tokenlab').spec?.maxReplicas, 12)
  t.equal(find<IHorizontalPodAutoscaler>(production, 'HorizontalPodAutoscaler', 'reports').spec?.maxReplicas, 6)
  t.notOk([...base, ...production].some((o) => ['StatefulSet', 'Cluster', 'Pooler'].includes(o.kind)), 'no database in the base or the overlay (it is the platform\'s)')
})

t.test('workload rules', async (t) => {
  t.ok(DRAIN.tokenlab > 0 && DRAIN.reports > 0, `the servers drain for ${DRAIN.tokenlab} and ${DRAIN.reports} s (their server.ts)`)
  for (const [name, objects] of Object.entries(renderings)) {
    t.same(probeViolations(objects, PROBES), [], `${name}: readiness, liveness and startup probes on the right paths`)
    t.same(podSecurityViolations(objects), [], `${name}: non-root, no escalation, no capabilities, RuntimeDefault seccomp, read-only root, no token`)
    t.same(resourceViolations(objects), [], `${name}: requests and limits`)
    t.same(shutdownViolations(objects, DRAIN), [], `${name}: preStop sleep and a long enough grace period`)
    t.same(inlineSecretViolations(objects), [], `${name}: no secret value in any manifest`)
    t.same(privateKeyViolations(objects), [], `${name}: the private key mounted into tokenlab only`)
    t.same(metricsViolations(objects), [], `${name}: the metrics port behind no Service the Ingress uses`)
  }
  for (const pod of podTemplates(production)) {
    t.equal(pod.spec.securityContext?.runAsUser, 1000, `${pod.where}: the image's node user`)
  }

  t.test('each rule reports a broken copy', async (t) => {
    const tokenlabOf = (objects: K8sObject[]) => containerOf(deployment(objects, 'tokenlab'), 'tokenlab')
    const reportsOf = (objects: K8sObject[]) => containerOf(deployment(objects, 'reports'), 'reports')
    const migrateOf = (objects: K8sObject[]) => containerOf(job(objects), 'migrate')
    const podOf = (objects: K8sObject[], name: string) => deployment(objects, name).spec!.template.spec!

    t.match(probeViolations(broken((o) => { delete reportsOf(o).startupProbe }), PROBES), [/Deployment\/reports container reports: no startupProbe/])
    t.match(probeViolations(broken((o) => { tokenlabOf(o).readinessProbe!.httpGet!.path = '/health' }), PROBES), [/readinessProbe GETs \/health, not \/ready/])
    t.match(probeViolations(broken((o) => { tokenlabOf(o).livenessProbe!.httpGet!.port = 'metrics' }), PROBES), [/livenessProbe targets the metrics port/])
    t.match(probeViolations(broken((o) => { tokenlabOf(o).startupProbe = { exec: { command: ['true'] } } }), PROBES), [/startupProbe is not an HTTP GET/])

    t.match(podSecurityViolations(broken((o) => { tokenlabOf(o).securityContext!.runAsUser = 0 })), [/container tokenlab: runAsUser is 0/])
    t.match(podSecurityViolations(broken((o) => { migrateOf(o).securityContext!.readOnlyRootFilesystem = false })), [/Job\/tokenlab-migrate container migrate: readOnlyRootFilesystem is not true/])
    t.match(podSecurityViolations(broken((o) => { reportsOf(o).securityContext!.capabilities = { drop: ['NET_RAW'] } })), [/capabilities do not drop ALL/])
    t.match(podSecurityViolations(broken((o) => { reportsOf(o).securityContext!.allowPrivilegeEscalation = true })), [/allowPrivilegeEscalation is not false/])
    t.match(podSecurityViolations(broken((o) => { podOf(o, 'reports').automountServiceAccountToken = true })), [/Deployment\/reports: automountServiceAccountToken is not false/])
    t.match(podSecurityViolations(broken((o) => { delete podOf(o, 'tokenlab').securityContext!.seccompProfile })), [/seccompProfile is not RuntimeDefault/])
    t.match(podSecurityViolations(broken((o) => { delete podOf(o, 'tokenlab').securityContext!.runAsNonRoot; delete tokenlabOf(o).securityContext!.runAsNonRoot })), [/runAsNonRoot is not true/])

    t.match(resourceViolations(broken((o) => { delete migrateOf(o).resources!.limits })), [/migrate: no cpu limit/, /migrate: no memory limit/])
    t.match(resourceViolations(broken((o) => { reportsOf(o).resources!.limits!.memory = '64Mi' })), [/memory limit below its request/])

    t.match(shutdownViolations(broken((o) => { delete reportsOf(o).lifecycle }), DRAIN), [/reports: no preStop sleep/])
    t.match(shutdownViolations(broken((o) => { podOf(o, 'tokenlab').terminationGracePeriodSeconds = 10 }), DRAIN), [/terminationGracePeriodSeconds 10 < preStop 5 s \+ drain 10 s/])
    t.match(shutdownViolations(production, { tokenlab: DRAIN.tokenlab, reports: 30 }), [/Deployment\/reports: terminationGracePeriodSeconds 20 < preStop 5 s \+ drain 30 s/], 'a longer drain needs a longer grace period')

    t.match(inlineSecretViolations(broken((o) => { env(tokenlabOf(o), 'DATABASE_URL')!.valueFrom = undefined; env(tokenlabOf(o), 'DATABASE_URL')!.value = 'postgres://tokenlab@pgbouncer/tokenlab' })), [/env DATABASE_URL: an inline value/])
    t.match(inlineSecretViolations(broken((o) => { env(reportsOf(o), 'DATABASE_URL')!.valueFrom = { configMapKeyRef: { name: 'c', key: 'url' } } })), [/env DATABASE_URL: not from a secretKeyRef/])
    t.match(inlineSecretViolations(broken((o) => { env(tokenlabOf(o), 'JWT_PRIVATE_KEY_FILE')!.value = '/tmp/jwt-ed25519.pem' })), [/JWT_PRIVATE_KEY_FILE: not a file in a mounted Secret volume/])
    t.match(inlineSecretViolations(broken((o) => { env(tokenlabOf(o), 'JWT_PUBLIC_KEYS_FILE')!.value = '/run/secrets/tokenlab/other.pem' })), [/JWT_PUBLIC_KEYS_FILE: not a file in a mounted Secret volume/], 'a file the volume\'s items do not list')
    t.match(inlineSecretViolations(broken((o) => { o.push({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'tokenlab-database' }, stringData: { url: 'x' } }) })), [/Secret\/tokenlab-database: defined in the manifests/])
    t.match(inlineSecretViolations(broken((o) => { deployment(o, 'reports').metadata!.annotations = { note: 'postgres://reports:hunter2@pgbouncer/tokenlab' } })), [/Deployment\/reports: a credential/])

    t.match(privateKeyViolations(broken((o) => {
      podOf(o, 'reports').volumes!.push({ name: 'keys', secret: { secretName: 'tokenlab-jwt-keys' } })
      reportsOf(o).volumeMounts!.push({ name: 'keys', mountPath: '/keys', readOnly: true })
    })), [/Deployment\/reports: mounts the private key Secret tokenlab-jwt-keys/, /Deployment\/reports container reports: mounts the private key Secret/])
    t.match(privateKeyViolations(broken((o) => {
      podOf(o, 'tokenlab').containers.push({ name: 'sidecar', image: 'busybox', volumeMounts: [{ name: 'jwt-keys', mountPath: '/keys' }] })
    })), [/Deployment\/tokenlab container sidecar: mounts the private key Secret/])
    t.match(privateKeyViolations(broken((o) => {
      migrateOf(o).env!.push({ name: 'KEY', valueFrom: { secretKeyRef: { name: 'tokenlab-jwt-keys', key: 'jwt-ed25519.pem' } } })
    })), [/Job\/tokenlab-migrate container migrate: reads the private key Secret/])

    t.match(metricsViolations(broken((o) => { find<IService>(o, 'Service', 'tokenlab').spec!.ports!.push({ name: 'metrics', port: 9464, targetPort: 'metrics' }) })),
      [/Service\/tokenlab: port 9464 reaches the metrics port of Deployment\/tokenlab, and Ingress\/tokenlab routes to it/])
    t.match(metricsViolations(broken((o) => { deployment(o, 'tokenlab').spec!.template.metadata!.annotations!['prometheus.io/port'] = '3000' })), [/prometheus.io annotations do not announce port 9464/])
  })
})

t.test('tokenlab and the resource service are configured for each other', async (t) => {
  const known = Object.keys(configSchema.properties)
  for (const [name, objects] of Object.entries(renderings)) {
    const tokenlab = containerOf(deployment(objects, 'tokenlab'), 'tokenlab')
    const reports = containerOf(deployment(objects, 'reports'), 'reports')
    for (const e of tokenlab.env ?? []) t.ok(known.includes(e.name), `${name}: ${e.name} is a tokenlab setting (src/config.ts)`)
    // The values tokenlab would start with; a secret's value stands in as a URL.
    const data = Object.fromEntries((tokenlab.env ?? []).map((e) => [e.name, e.value ?? `postgres://from-secret/${e.valueFrom?.secretKeyRef?.name ?? '?'}`]))
    const config = loadConfig({ data, fromEnvironment: false })
    t.doesNotThrow(() => requireSigningKey(config), `${name}: the configuration tokenlab validates, with a signing key`)
    t.match(config, {
      NODE_ENV: 'production',
      HOST: '0.0.0.0',
      AUTH_MODE: 'jwt',
      JWT_ALGORITHM: 'EdDSA',
      JWT_PRIVATE_KEY_FILE: '/run/secrets/tokenlab/jwt-ed25519.pem',
      JWT_PUBLIC_KEYS_FILE: /^\/run\/secrets\/tokenlab\//,
      JWT_REVOCATION: 'on',
      TRUST_PROXY: '1',
      METRICS_PORT: 9464
    }, `${name}: EdDSA, revocation, one trusted proxy hop, metrics on 9464`)
    t.equal(String(config.PORT), String(tokenlab.ports?.find((p) => p.name === 'http')?.containerPort), 'PORT is the http container port')

    const database = env(tokenlab, 'DATABASE_URL')?.valueFrom?.secretKeyRef
    const listen = env(tokenlab, 'DATABASE_LISTEN_URL')?.valueFrom?.secretKeyRef
    t.ok(database !== undefined && listen !== undefined, 'DATABASE_URL and DATABASE_LISTEN_URL from a Secret')
    t.equal(listen?.name, database?.name, 'the same Secret')
    t.not(listen?.key, database?.key, 'another key: the direct connection, not the pooler')

    t.same(reports.command, ['node', 'dist/resource-server/server.js'])
    const reportsKnown = Object.keys(reportsConfigSchema.properties)
    for (const e of reports.env ?? []) t.ok(reportsKnown.includes(e.name), `${name}: ${e.name} is a resource service setting (resource-server/config.ts)`)
    const reportsData = Object.fromEntries((reports.env ?? []).map((e) => [e.name, e.value ?? `postgres://from-secret/${e.valueFrom?.secretKeyRef?.name ?? '?'}`]))
    t.match(loadReportsConfig({ data: reportsData, fromEnvironment: false }), { HOST: '0.0.0.0', PORT: 3100, JWT_AUDIENCE: 'reports' }, `${name}: the configuration the resource service validates`)
    t.same((reports.env ?? []).map((e) => e.name).sort(), ['COOKIE_NAME', 'DATABASE_URL', 'HOST', 'JWKS_REFETCH_INTERVAL', 'JWKS_URL', 'JWT_AUDIENCE', 'JWT_ISSUER', 'PORT'], `${name}: the resource service's settings, and no key`)
    t.equal(envValue(reports, 'PORT'), String(reports.ports?.find((p) => p.name === 'http')?.containerPort), 'its PORT is its http container port')
    const jwks = new URL(envValue(reports, 'JWKS_URL') ?? '')
    const tokenlabService = find<IService>(objects, 'Service', 'tokenlab')
    t.equal(jwks.hostname, tokenlabService.metadata?.name, 'JWKS_URL names the tokenlab Service')
    t.equal(jwks.port, String(tokenlabService.spec?.ports?.find((p) => p.name === 'http')?.port), 'on its http port')
    t.equal(jwks.pathname, '/.well-known/jwks.json')
    t.equal(envValue(reports, 'JWT_ISSUER'), config.JWT_ISSUER, 'tokenlab\'s issuer')
    const audiences = list(config.JWT_AUDIENCE)
    t.ok(audiences.slice(1).includes(envValue(reports, 'JWT_AUDIENCE') ?? ''), 'an audience tokenlab puts in every token, not tokenlab\'s own')
    t.equal(envValue(reports, 'COOKIE_NAME'), config.COOKIE_NAME, `${name}: the cookie tokenlab sets`)
    const reportsDatabase = env(reports, 'DATABASE_URL')?.valueFrom?.secretKeyRef
    t.ok(reportsDatabase !== undefined && reportsDatabase.name !== database?.name, 'its DATABASE_URL from a Secret of its own (a read-only role)')
  }
})

t.test('replicas, autoscaling, disruption budgets and Services', async (t) => {
  for (const [name, objects] of Object.entries(renderings)) {
    t.equal(deployment(objects, 'tokenlab').spec?.replicas, 3, `${name}: tokenlab starts with 3 replicas`)
    const pods = podTemplates(objects)
    for (const workload of ['tokenlab', 'reports']) {
      const target = deployment(objects, workload)
      const hpa = find<IHorizontalPodAutoscaler>(objects, 'HorizontalPodAutoscaler', workload)
      t.equal(hpa.apiVersion, 'autoscaling/v2')
      t.same(hpa.spec?.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: workload }, `${name}: the ${workload} autoscaler scales its Deployment`)
      t.equal(hpa.spec?.minReplicas, target.spec?.replicas, 'from the Deployment\'s starting size')
      t.ok((hpa.spec?.maxReplicas ?? 0) > (hpa.spec?.minReplicas ?? 0), 'up to more')
      t.ok(hpa.spec?.metrics?.some((m) => m.resource?.name === 'cpu' && m.resource.target.type === 'Utilization'), 'on CPU utilisation')
      const pdb = find<IPodDisruptionBudget>(objects, 'PodDisruptionBudget', workload)
      t.same(pods.filter((p) => selectorMatches(pdb.spec?.selector, p.labels)).map((p) => p.where), [`Deployment/${workload}`], `${name}: the ${workload} disruption budget covers its pods only`)
      t.equal(pdb.spec?.maxUnavailable, 1, 'one at a time')
      const service = find<IService>(objects, 'Service', workload)
      const selected = pods.filter((p) => Object.entries(service.spec?.selector ?? {}).every(([k, v]) => p.labels[k] === v))
      t.same(selected.map((p) => p.where), [`Deployment/${workload}`], `${name}: the ${workload} Service selects its Deployment's pods only (not the Job's)`)
      t.same(selectorMatches(target.spec?.selector, target.spec?.template.metadata?.labels ?? {}), true, 'the Deployment selector matches its template')
    }
  }
})

t.test('the Ingress serves both services on one origin', async (t) => {
  const ROUTES: Record<string, string> = {
    '/': 'tokenlab:http',
    '/login': 'tokenlab:http',
    '/health': 'tokenlab:http',
    '/ready': 'tokenlab:http',
    '/openapi.json': 'tokenlab:http',
    '/.well-known/jwks.json': 'tokenlab:http',
    '/docs/json': 'tokenlab:http',
    '/whoami': 'reports:http',
    '/whoami/x': 'tokenlab:http',
    '/reports': 'reports:http',
    '/reports/7': 'reports:http',
    '/reportsx': 'tokenlab:http'
  }
  const table = (ingress: IIngress, host: string) => Object.fromEntries(Object.keys(ROUTES).map((path) => [path, ingressRoute(ingress, host, path)]))
  t.same(table(find(base, 'Ingress', 'tokenlab'), 'any.example'), ROUTES, 'base: the resource service\'s data routes to it, everything else (its /health and /openapi.json included) to tokenlab')
  const ingress = find<IIngress>(production, 'Ingress', 'tokenlab')
  t.same(table(ingress, 'tokenlab.example.com'), ROUTES, 'production: the same on the production host')
  t.same(Object.values(table(ingress, 'other.example')).filter((v) => v !== undefined), [], 'and nothing on another host')

  const copy = clone(ingress)
  copy.spec!.rules![0]!.http!.paths[0]!.pathType = 'Prefix'
  copy.spec!.rules![0]!.http!.paths.push({ path: '/health', pathType: 'Exact', backend: { service: { name: 'reports', port: { name: 'http' } } } })
  t.match(table(copy, 'tokenlab.example.com'), { '/whoami/x': 'reports:http', '/health': 'reports:http' }, 'the table check sees a change of routing')
  t.notSame(table(copy, 'tokenlab.example.com'), ROUTES)
})

t.test('NetworkPolicies: exactly the connections described', async (t) => {
  const cluster = find<Cluster>(cnpg, 'Cluster', 'tokenlab-db')
  const pooler = find<Pooler>(cnpg, 'Pooler', 'pgbouncer')
  const databaseNamespace = cluster.metadata?.namespace ?? ''
  const tcp = (...ports: Array<[number, string]>) => ports.map(([port, name]) => ({ port, protocol: 'TCP' as const, name }))
  const modelPods = (app: K8sObject[]): ModelPod[] => [
    ...podTemplates(app).map((pod) => ({
      name: pod.name,
      namespace: pod.namespace ?? '',
      labels: pod.labels,
      ports: pod.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => ({ port: p.containerPort, protocol: (p.protocol ?? 'TCP') as 'TCP', name: p.name })))
    })),
    { name: 'stranger', namespace: 'tokenlab', labels: { app: 'stranger' }, ports: tcp([8080, 'http']) },
    ...['postgres-1', 'postgres-2'].map((name) => ({
      name,
      namespace: databaseNamespace,
      labels: { ...cluster.spec.inheritedMetadata?.labels, 'cnpg.io/cluster': cluster.metadata?.name ?? '' },
      ports: tcp([5432, 'postgresql'], [8000, 'status'], [9187, 'metrics'])
    })),
    { name: 'pgbouncer', namespace: databaseNamespace, labels: { ...pooler.spec.template?.metadata?.labels, 'cnpg.io/poolerName': pooler.metadata?.name ?? '' }, ports: tcp([5432, 'pgbouncer'], [9127, 'metrics']) },
    { name: 'controller', namespace: 'ingress-controller', labels: { 'app.kubernetes.io/name': 'controller' }, ports: tcp([443, 'https']) },
    { name: 'prometheus', namespace: 'monitoring', labels: { 'app.kubernetes.io/name': 'prometheus' }, ports: tcp([9090, 'web']) },
    { name: 'coredns', namespace: 'kube-system', labels: { 'k8s-app': 'kube-dns' }, ports: [{ port: 53, protocol: 'UDP', name: 'dns' }, { port: 53, protocol: 'TCP', name: 'dns-tcp' }] },
    { name: 'operator', namespace: 'cnpg-system', labels: { 'app.kubernetes.io/name': 'cloudnative-pg' }, ports: tcp([9443, 'webhook']) },
    { name: 'outsider', namespace: 'default', labels: { app: 'outsider' }, ports: tcp([8080, 'http']) }
  ]
  // Connections into tokenlab's and the database's namespaces, and out of tokenlab's.
  const relevant = (src: ModelPod, dst: ModelPod) => src.namespace === 'tokenlab' || dst.namespace === 'tokenlab' || dst.namespace === databaseNamespace
  const connections = (app: K8sObject[]) => allowedConnections(
    [...app, ...cnpg].filter((o) => o.kind === 'NetworkPolicy') as unknown as INetworkPolicy[], modelPods(app), relevant)

  const dns = (pod: string) => [`${pod} -> coredns:53/TCP`, `${pod} -> coredns:53/UDP`]
  const EXPECTED = [
    // The ingress controller reaches the API and the resource service; Prometheus the metrics port.
    'controller -> tokenlab:3000/TCP', 'controller -> reports:3100/TCP', 'prometheus -> tokenlab:9464/TCP',
    // The resource service reaches the API (for the key set) and PgBouncer.
    'reports -> tokenlab:3000/TCP', 'reports -> pgbouncer:5432/TCP',
    // The API: PgBouncer, and Postgres directly for LISTEN; the Job: Postgres.
    'tokenlab -> pgbouncer:5432/TCP', 'tokenlab -> postgres-1:5432/TCP', 'tokenlab -> postgres-2:5432/TCP',
    'tokenlab-migrate -> postgres-1:5432/TCP', 'tokenlab-migrate -> postgres-2:5432/TCP',
    // DNS for the three workloads (not for any other pod of the namespace).
    ...dns('tokenlab'), ...dns('reports'), ...dns('tokenlab-migrate'),
    // The database side: PgBouncer to Postgres, the instances to each other, the operator, Prometheus.
    'pgbouncer -> postgres-1:5432/TCP', 'pgbouncer -> postgres-2:5432/TCP',
    'postgres-1 -> postgres-2:5432/TCP', 'postgres-1 -> postgres-2:8000/TCP', 'postgres-2 -> postgres-1:5432/TCP', 'postgres-2 -> postgres-1:8000/TCP',
    'operator -> postgres-1:5432/TCP', 'operator -> postgres-1:8000/TCP', 'operator -> postgres-2:5432/TCP', 'operator -> postgres-2:8000/TCP',
    'prometheus -> pgbouncer:9127/TCP', 'prometheus -> postgres-1:9187/TCP', 'prometheus -> postgres-2:9187/TCP'
  ].sort()
  t.same(connections(production), EXPECTED, 'production with the CloudNativePG example: every allowed connection, nothing more')

  const withoutDefaultDeny = connections(broken((o) => { o.splice(o.findIndex((x) => x.kind === 'NetworkPolicy' && x.metadata.name === 'default-deny'), 1) }))
  t.ok(withoutDefaultDeny.includes('outsider -> stranger:8080/TCP'), 'without the default deny, anything reaches an unlisted pod')
  const openPorts = connections(broken((o) => { delete find<INetworkPolicy>(o, 'NetworkPolicy', 'tokenlab').spec!.ingress![0]!.ports }))
  t.same(openPorts.filter((c) => !EXPECTED.includes(c)), ['controller -> tokenlab:9464/TCP'], 'a rule without ports opens the metrics port to the ingress controller')
  const reportsAnywhere = connections(broken((o) => { find<INetworkPolicy>(o, 'NetworkPolicy', 'reports').spec!.egress!.push({}) }))
  t.ok(reportsAnywhere.includes('reports -> postgres-1:5432/TCP') === false && reportsAnywhere.includes('reports -> outsider:8080/TCP'), 'an open egress rule lets the resource service out (the database side still refuses it Postgres)')
})

t.test('the migration Job', async (t) => {
  const migrate = job(production)
  const container = containerOf(migrate, 'migrate')
  t.same(container.command, ['node', 'dist/scripts/db.js', 'migrate'], 'migrate only: no demo staff in production')
  t.equal(migrate.spec?.template.spec?.restartPolicy, 'Never')
  t.ok((migrate.spec?.backoffLimit ?? 6) <= 3 && (migrate.spec?.activeDeadlineSeconds ?? 0) > 0, 'a bounded number of tries and time')
  const tokenlab = containerOf(deployment(production, 'tokenlab'), 'tokenlab')
  t.same(env(container, 'DATABASE_URL')?.valueFrom?.secretKeyRef, env(tokenlab, 'DATABASE_LISTEN_URL')?.valueFrom?.secretKeyRef, 'straight to Postgres, as tokenlab\'s listener')
  t.equal(migrate.metadata?.annotations?.['argocd.argoproj.io/hook'], 'PreSync', 'an Argo CD PreSync hook')

  // The README's first rollout step applies, by label, exactly the Job and its NetworkPolicy.
  const selector = /kubectl apply -k deploy\/k8s\/overlays\/production -l (\S+)=(\S+)/.exec(readme)
  t.ok(selector, 'the README applies the Job by a label selector')
  const [, key = '', value = ''] = selector ?? []
  t.same(production.filter((o) => o.metadata.labels?.[key] === value).map((o) => `${o.kind}/${o.metadata.name}`), ['Job/tokenlab-migrate', 'NetworkPolicy/tokenlab-migrate'])
  t.match(readme, /kubectl -n tokenlab wait --for=condition=complete job\/tokenlab-migrate/, 'and waits for it before the full apply')
  t.ok(readme.indexOf('wait --for=condition=complete job/tokenlab-migrate') < readme.indexOf('kubectl apply -k deploy/k8s/overlays/production\n'), 'in that order')
})

t.test('the CloudNativePG example', async (t) => {
  const cluster = find<Cluster>(cnpg, 'Cluster', 'tokenlab-db')
  const pooler = find<Pooler>(cnpg, 'Pooler', 'pgbouncer')
  t.ok(cluster.spec.instances >= 2, 'a primary and replicas')
  t.match(cluster.spec.bootstrap?.initdb, { database: 'tokenlab', owner: 'tokenlab' })
  t.match(cluster.spec.managed?.roles, [{ name: 'reports', login: true, inRoles: ['reports_reader'], passwordSecret: { name: 'reports-db-role' } }], 'the resource service\'s role')
  t.match(readFileSync(join(root, 'deploy/reports-reader.sql'), 'utf8'), /CREATE ROLE reports_reader NOLOGIN/, 'a member of the read-only group role deploy/reports-reader.sql creates')
  t.match(readme, /psql -d tokenlab -v ON_ERROR_STOP=1 < deploy\/reports-reader\.sql/, 'which the README runs')
  t.equal(pooler.spec.cluster.name, cluster.metadata?.name, 'the Pooler in front of that Cluster')
  t.equal(pooler.spec.type, 'rw', 'of its primary')
  t.equal(pooler.spec.pgbouncer.poolMode, 'transaction')
  t.ok(Number(pooler.spec.pgbouncer.parameters?.max_prepared_statements) > 0, 'with prepared-statement support (tokenlab uses named statements)')
  // The names the base's NetworkPolicies and the README's URLs use.
  const policyText = JSON.stringify(base.filter((o) => o.kind === 'NetworkPolicy'))
  t.match(policyText, `"kubernetes.io/metadata.name":"${cluster.metadata?.namespace ?? '?'}"`, 'the base allows the example\'s namespace')
  t.match(readme, `@${pooler.metadata?.name ?? '?'}.${cluster.metadata?.namespace ?? '?'}.svc:5432/tokenlab`, 'the README\'s DATABASE_URL goes through the Pooler\'s Service')
  t.match(readme, `@${cluster.metadata?.name ?? '?'}-rw.${cluster.metadata?.namespace ?? '?'}.svc:5432/tokenlab`, 'and DATABASE_LISTEN_URL to the primary')
})

t.test('the README creates every Secret the manifests reference', async (t) => {
  t.match(readme, 'kubectl kustomize deploy/k8s/overlays/production', 'how to render')
  const created = new Map<string, { line: string, keys: string[] }>()
  for (const line of readme.replace(/\\\n\s*/g, ' ').split('\n')) {
    const command = /kubectl -n (\S+) create secret (?:generic|tls) (\S+)/.exec(line)
    if (command === null) continue
    const keys = [...line.matchAll(/--from-(?:file|literal)=([^=\s]+)=/g)].map((m) => m[1] ?? '')
    created.set(`${command[1] ?? ''}/${command[2] ?? ''}`, { line, keys })
  }
  const referenced = new Map<string, Set<string>>()
  const reference = (namespace: string | undefined, name: string, key?: string) => {
    const id = `${namespace ?? ''}/${name}`
    if (!referenced.has(id)) referenced.set(id, new Set())
    if (key !== undefined) referenced.get(id)?.add(key)
  }
  for (const pod of podTemplates(production)) {
    for (const container of pod.spec.containers) {
      for (const e of container.env ?? []) {
        const ref = e.valueFrom?.secretKeyRef
        if (ref !== undefined) reference(pod.namespace, ref.name ?? '', ref.key)
      }
    }
    for (const volume of pod.spec.volumes ?? []) {
      if (volume.secret !== undefined) {
        reference(pod.namespace, volume.secret.secretName ?? '')
        for (const item of volume.secret.items ?? []) reference(pod.namespace, volume.secret.secretName ?? '', item.key)
      }
    }
  }
  for (const ingress of production.filter((o) => o.kind === 'Ingress') as unknown as IIngress[]) {
    for (const tls of ingress.spec?.tls ?? []) reference(ingress.metadata?.namespace, tls.secretName ?? '')
  }
  for (const role of find<Cluster>(cnpg, 'Cluster', 'tokenlab-db').spec.managed?.roles ?? []) {
    if (role.passwordSecret !== undefined) for (const key of ['username', 'password']) reference('tokenlab-db', role.passwordSecret.name, key)
  }
  t.same([...referenced.keys()].sort(), ['tokenlab-db/reports-db-role', 'tokenlab/reports-database', 'tokenlab/tokenlab-database', 'tokenlab/tokenlab-jwt-keys', 'tokenlab/tokenlab-tls'])
  for (const [id, keys] of referenced) {
    const command = created.get(id)
    t.ok(command, `the README creates the Secret ${id}`)
    for (const key of keys) t.ok(command?.keys.includes(key), `${id} with the key ${key}`)
  }
  t.match(created.get('tokenlab-db/reports-db-role')?.line, /--type=kubernetes\.io\/basic-auth/, 'the role\'s Secret is basic-auth, as CloudNativePG requires')
  t.match(created.get('tokenlab/tokenlab-tls')?.line, /create secret tls/, 'the certificate a TLS Secret')
})
